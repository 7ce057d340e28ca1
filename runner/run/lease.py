"""Holding a run's lease while a command works on it: a heartbeat beside the work.

On PostgreSQL a run's writer holds a lease that ends unless renewed (:mod:`runner.store`).
:func:`under_lease` runs the work with a task that renews it every ``store.heartbeat`` seconds;
if the lease was taken over, the renewal raises :class:`~runner.errors.LeaseLost`, which
cancels the work: nothing more is sent. A store with nothing to renew (SQLite's file lock)
runs the work alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from runner.errors import collapse
from runner.store import Store

T = TypeVar("T")


async def under_lease(store: Store, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()`` while the store's lease is renewed; LeaseLost stops it."""
    interval = store.heartbeat
    if interval is None:
        return await work()
    result: list[T] = []
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_renew_every, store, interval)
            result.append(await work())
            group.cancel_scope.cancel()
    except BaseExceptionGroup as failure:  # the work's own error, or LeaseLost: not a group
        raise collapse(failure) from failure
    return result[0]


async def _renew_every(store: Store, interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        store.renew_lease()
