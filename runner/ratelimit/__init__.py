"""One request budget for the whole run: every window at once, learned from the server, prioritised.

An exact sliding log admits a request only if every window has room; the server's headers and
push-back lower the allowance (never raise it); urgent work goes first, and polls and triggers
each keep a reserve of every window. ``docs/architecture.md`` ("Within the limits, and close to
them") gives the model and its guarantees. The parts:

* :mod:`~runner.ratelimit.headers`: what a response says (the one part ``runner.api`` imports);
* :mod:`~runner.ratelimit.sliding_log`: the windows and the exact log;
* :mod:`~runner.ratelimit.priority`: who goes next, the reserves and the poll share;
* :mod:`~runner.ratelimit.learning`: windows, caps and neighbours learned from the headers;
* :mod:`~runner.ratelimit.pushback`: how a 429 or a 503 pauses the run;
* :mod:`~runner.ratelimit.limits`: all of the above as one synchronous model;
* :mod:`~runner.ratelimit.limiter`: the async core, permits, waiters and the timer.
"""

from runner.ratelimit.headers import RateLimitInfo, parse_rate_limit_headers
from runner.ratelimit.limiter import LimiterStats, Permit, RateLimiter
from runner.ratelimit.priority import RequestKind
from runner.ratelimit.pushback import PauseRecord
from runner.ratelimit.sliding_log import SlidingLog, Window

__all__ = [
    "LimiterStats",
    "PauseRecord",
    "Permit",
    "RateLimitInfo",
    "RateLimiter",
    "RequestKind",
    "SlidingLog",
    "Window",
    "parse_rate_limit_headers",
]
