"""Spelling suggestions for "did you mean" help lines."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count as one edit).

    >>> edit_distance("agnet", "agent")
    1
    >>> edit_distance("pii", "phi")
    1
    """
    if a == b:
        return 0
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def closest(word: str, candidates: Iterable[str], max_distance: int | None = None) -> str | None:
    """The candidate nearest to ``word``, if it is near enough to be a likely typo.

    >>> closest("tickt", ["ticket", "triage"])
    'ticket'
    >>> closest("zzz", ["ticket"]) is None
    True
    """
    if max_distance is None:
        max_distance = 1 if len(word) <= 3 else 2 if len(word) <= 6 else 3
    best, best_d = None, max_distance + 1
    lowered = word.lower()
    for c in sorted(set(candidates)):
        if c == word:
            continue
        d = 0 if c.lower() == lowered else edit_distance(word, c, max_distance)
        if d < best_d:
            best, best_d = c, d
    return best if best_d <= max_distance else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A help sentence, or None when nothing is close.

    >>> did_you_mean("mdoel", ["model", "tools"])
    'did you mean `model`?'
    """
    c = closest(word, candidates)
    return f"did you mean `{c}`?" if c else None
