"""Writing exact quantities back as Vox literals: money, durations and token counts.

>>> format_money(50_000), format_money(100), format_money(19_990_000), format_money(None)
('$0.05', '$0.0001', '$19.99', 'unbounded')
>>> format_duration(120_000), format_duration(1_500), format_duration(250)
('2m', '1500ms', '250ms')
>>> format_tokens(200_000)
'200_000'
"""

from __future__ import annotations

MICROS_PER_DOLLAR = 1_000_000


def format_money(micros: int | None) -> str:
    """Integer micro-dollars as the shortest exact `$` literal (``unbounded`` for None)."""
    if micros is None:
        return "unbounded"
    sign = "-" if micros < 0 else ""
    dollars, rest = divmod(abs(micros), MICROS_PER_DOLLAR)
    text = f"{dollars:,}".replace(",", "_")
    if rest:
        text += "." + f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${text}"


def format_duration(ms: int | None) -> str:
    """Milliseconds in the largest unit that keeps the value whole."""
    if ms is None:
        return "unbounded"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def format_tokens(n: int | None) -> str:
    """A count with `_` thousands separators, as Vox writes integers."""
    if n is None:
        return "unbounded"
    return f"{n:,}".replace(",", "_")


def cost_of_tokens(tokens: int, micros_per_million: int) -> int:
    """Micro-dollars for ``tokens`` at a price per million tokens, rounded up (never under-counts).

    >>> cost_of_tokens(1_000, 600_000)  # 1k tokens at $0.60 per 1M
    600
    >>> cost_of_tokens(1, 150_000)
    1
    """
    return -(-tokens * micros_per_million // 1_000_000)
