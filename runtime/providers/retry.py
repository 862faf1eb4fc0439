"""When to send a failed model call again, and how long to wait first.

Retryable errors (429, 5xx, timeouts, connection failures, truncated streams) are retried up to
``max_attempts`` calls in all; 400/401/404 and malformed bodies are not (sending the same bytes
again cannot fix them). The wait before attempt ``n + 1``:

* the provider said ``retry-after``: that long, plus jitter *above* it (never sooner than asked),
  unless it asks for more than ``max_retry_after_s``: then the error is raised at once, so the
  caller can route elsewhere instead of parking a run for minutes;
* otherwise "full jitter" exponential backoff: uniform in ``[0, min(cap_s, base_s * 2**(n-1))]``.

``sleep`` and ``random`` are injectable so tests run without waiting.

Every attempt may cost money, not only the last, so a caller that keeps accounts (the executor)
sets :data:`ATTEMPTS` to an :class:`AttemptLog` around a call: the loop records each attempt
there as it is sent and how it ended, and asks the log before sending another (the executor
reserves each further attempt's worst case against the budget first, and declines the retry when
it does not fit).
"""

from __future__ import annotations

import random as _random
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

import anyio

from .errors import ProviderError

T = TypeVar("T")


@dataclass(slots=True)
class Attempt:
    """One attempt of a call: ``state`` is ``sent`` (in flight, or cut off by a cancellation),
    ``answered`` (``response`` is what came back) or ``failed`` (``error`` says why, and whether
    the provider may have billed it)."""

    number: int
    state: str = "sent"
    response: Any = None
    error: ProviderError | None = None


class AttemptLog:
    """The attempts of one call, in order, for the caller's accounting.

    ``allow_retry(n, error)`` is asked before attempt ``n`` (2, 3, ...) is sent; False ends the
    call with ``error`` (``declined`` then says so); ``allowed`` counts the retries it allowed.
    """

    __slots__ = ("attempts", "allow_retry", "allowed", "declined")

    def __init__(self, allow_retry: Callable[[int, ProviderError], bool] | None = None) -> None:
        self.attempts: list[Attempt] = []
        self.allow_retry = allow_retry
        self.allowed = 0
        self.declined = False

    def begin(self) -> Attempt:
        attempt = Attempt(len(self.attempts) + 1)
        self.attempts.append(attempt)
        return attempt


#: Attempts of one call in all, the first included, unless a policy says otherwise. The compiler's
#: budget analysis counts this many billed attempts per model call (compiler/analysis/budgets.py,
#: MODEL_ATTEMPTS; a test keeps the two equal), so the runtime never makes more.
MAX_ATTEMPTS = 4

# The log of the call being made in this context, if its caller keeps one.
ATTEMPTS: ContextVar[AttemptLog | None] = ContextVar("vox_provider_attempts", default=None)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = MAX_ATTEMPTS  # calls in all, the first included
    base_s: float = 0.5
    cap_s: float = 20.0
    max_retry_after_s: float = 60.0  # a longer retry-after is not waited for
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False)
    random: Callable[[], float] = field(default=_random.random, compare=False)

    def delay(self, attempt: int, error: ProviderError) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based), or None: do not retry.

        >>> p = RetryPolicy(random=lambda: 1.0)
        >>> [p.delay(n, ProviderError("x")) for n in (1, 2)]  # not retryable
        [None, None]
        >>> from vox.runtime.providers.errors import ServerError, RateLimited
        >>> [p.delay(n, ServerError("x")) for n in (1, 2, 3, 4)]
        [0.5, 1.0, 2.0, None]
        >>> p.delay(1, RateLimited("x", retry_after=3.0))
        3.5
        """
        if not error.retryable or attempt >= self.max_attempts:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after_s:
                return None
            # jitter only above the floor the provider set, so a herd does not return at once
            return error.retry_after + self.random() * self.base_s
        return self.random() * min(self.cap_s, self.base_s * 2 ** (attempt - 1))

    async def run(
        self,
        attempt: Callable[[int], Awaitable[T]],
        on_retry: Callable[[int, ProviderError, float], None] | None = None,
    ) -> T:
        """Call ``attempt(n)`` for n = 1, 2, ... until it returns or fails for good. Each attempt
        is recorded in the :data:`ATTEMPTS` log, when the caller set one."""
        log = ATTEMPTS.get()
        n = 1
        while True:
            record = log.begin() if log is not None else None
            try:
                result = await attempt(n)
            except ProviderError as error:
                if record is not None:
                    record.state, record.error = "failed", error
                wait = self.delay(n, error)
                if wait is not None and log is not None and log.allow_retry is not None:
                    if log.allow_retry(n + 1, error):
                        log.allowed += 1
                    else:
                        log.declined, wait = True, None
                if wait is None:
                    error.attempts = n
                    raise
                if on_retry is not None:
                    on_retry(n, error, wait)
                await self.sleep(wait)
                n += 1
                continue
            if record is not None:
                record.state, record.response = "answered", result
            return result
