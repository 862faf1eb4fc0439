"""When to send a failed model call again, and how long to wait first.

Retryable errors (429, 5xx, timeouts, connection failures, truncated streams) are retried up to
``max_attempts`` calls in all; 400/401/404 and malformed bodies are not (sending the same bytes
again cannot fix them). The wait before attempt ``n + 1``:

* the provider said ``retry-after``: that long, plus jitter *above* it (never sooner than asked),
  unless it asks for more than ``max_retry_after_s``: then the error is raised at once, so the
  caller can route elsewhere instead of parking a run for minutes;
* otherwise "full jitter" exponential backoff: uniform in ``[0, min(cap_s, base_s * 2**(n-1))]``.

``sleep`` and ``random`` are injectable so tests run without waiting.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

import anyio

from .errors import ProviderError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4  # calls in all, the first included
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
        """Call ``attempt(n)`` for n = 1, 2, ... until it returns or fails for good."""
        n = 1
        while True:
            try:
                return await attempt(n)
            except ProviderError as error:
                wait = self.delay(n, error)
                if wait is None:
                    error.attempts = n
                    raise
                if on_retry is not None:
                    on_retry(n, error, wait)
                await self.sleep(wait)
                n += 1
