"""SIGINT and SIGTERM during one command: the phase under way stops cleanly, the signal is kept.

A command's async work runs through :func:`interruptible`, on a new event loop with a signal
watcher: a signal cancels the :meth:`Interrupt.phase` under way (planning, the run, a
confirmation) and is remembered, so the code after the phase says what the signal stopped.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio

from runner.errors import collapse

T = TypeVar("T")

Say = Callable[[str], None]


class Interrupt:
    """SIGINT and SIGTERM for one command: the phase under way is cancelled, the signal kept.

    A phase is a :meth:`phase` block; a signal that comes between phases cancels the next one
    as it begins. Code after a phase asks :attr:`signal` whether it was cut short.
    """

    def __init__(self, say: Say) -> None:
        self.signal: str | None = None
        self._say = say
        self._scope: anyio.CancelScope | None = None

    @contextmanager
    def phase(self) -> Iterator[None]:
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.signal is not None:
                scope.cancel()
            try:
                yield
            finally:
                self._scope = None

    async def watch(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.signal is None:
                    self.signal = name
                    self._say(f"{name}: stopping; nothing new is sent")
                else:
                    self._say(f"{name}: already stopping; the run's state is being recorded")
                if self._scope is not None:
                    self._scope.cancel()


def interruptible(body: Callable[[Interrupt], Awaitable[T]], say: Say) -> T:
    """Run ``body`` on a new event loop, with SIGINT and SIGTERM stopping it cleanly.

    A task group's failure is raised as the one error it stands for (a ledger that cannot be
    written, a refused key), not as a group.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    async def main() -> None:
        interrupt = Interrupt(say)
        async with anyio.create_task_group() as group:

            async def run_body() -> None:
                try:
                    result.append(await body(interrupt))
                except BaseExceptionGroup as group_error:
                    failure.append(collapse(group_error))
                except Exception as error:  # noqa: BLE001 - re-raised outside the task group
                    failure.append(error)
                finally:
                    group.cancel_scope.cancel()

            group.start_soon(interrupt.watch)
            group.start_soon(run_body)

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        anyio.run(main)
    finally:
        for signum, handler in handlers.items():  # asyncio leaves the defaults behind
            signal.signal(signum, handler)
    if failure:
        raise failure[0]
    return result[0]
