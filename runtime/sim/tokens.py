"""Token counting, splitting and log-probabilities, with quicktok's o200k encoding loaded once.

Counting is on every request's hot path, so encodings of repeated texts (system prompts, tool
definitions, earlier turns) are cached.
"""

from __future__ import annotations

import codecs
import math
from functools import lru_cache

import quicktok

_ENCODING = None

# Alternatives offered in `top_logprobs`, in order; the chosen token is skipped if it is one.
_ALTERNATIVES = (" the", " a", ",", ".", " and", " to", " of", " is", " in", " for", "\n", " it",
                 " that", " on", " with", " as", " we", " be", " at", " your", " this")


def encoding():
    """The o200k_base encoding (loaded on first use, then kept)."""
    global _ENCODING
    if _ENCODING is None:
        _ENCODING = quicktok.get_encoding("o200k_base")
    return _ENCODING


@lru_cache(maxsize=16384)
def count(text: str) -> int:
    """How many o200k tokens ``text`` is."""
    return len(encoding().encode_ordinary(text)) if text else 0


@lru_cache(maxsize=4096)
def pieces(text: str) -> tuple[tuple[str, bytes], ...]:
    """``text`` as stream pieces ``(text, bytes)``: one per token, except that tokens holding part
    of a UTF-8 character are merged with the next so every piece is valid text.

    >>> [p for p, _ in pieces("hello world")]
    ['hello', ' world']
    """
    enc = encoding()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out: list[tuple[str, bytes]] = []
    pending = b""
    for token in enc.encode_ordinary(text):
        raw = enc.decode_single_token_bytes(token)
        pending += raw
        piece = decoder.decode(raw)
        if piece:
            out.append((piece, pending))
            pending = b""
    if pending:
        out.append((decoder.decode(b"", final=True), pending))
    return tuple(out)


def truncate(text: str, limit: int) -> tuple[str, int, bool]:
    """``text`` cut to at most ``limit`` tokens: ``(text, tokens, was_cut)``."""
    parts = pieces(text)
    if len(parts) <= limit:
        return text, len(parts), False
    return "".join(p for p, _ in parts[:limit]), limit, True


def token_logprobs(parts, draw: float, index: int, confidence: float | None, top: int) -> list[dict]:
    """OpenAI-shaped ``logprobs.content`` entries for ``parts`` (from :func:`pieces`).

    Deterministic: each token's probability comes from ``draw`` (a number in [0, 1) fixed per
    answer) and its position; ``confidence`` fixes every token's probability instead. The
    alternatives share the remaining probability mass, so entropy computed from them is sane.
    """
    out = []
    for i, (piece, raw) in enumerate(parts):
        if confidence is not None:
            p = min(max(confidence, 1e-6), 1.0)
        else:
            u = (draw * 7919 + i * 0.618034) % 1.0
            p = 1.0 - 0.6 * u**4  # mostly confident, now and then unsure
        lp = round(math.log(p), 6)
        entry = {"token": piece, "logprob": lp, "bytes": list(raw), "top_logprobs": []}
        if top:
            alts = [{"token": piece, "logprob": lp, "bytes": list(raw)}]
            rest = 1.0 - p
            share = 0.5
            for alt in _ALTERNATIVES:
                if len(alts) >= top:
                    break
                if alt == piece:
                    continue
                alt_p = max(rest * share, 1e-12)
                alts.append({"token": alt, "logprob": round(math.log(alt_p), 6), "bytes": list(alt.encode())})
                share /= 2
            entry["top_logprobs"] = sorted(alts, key=lambda a: -a["logprob"])
        out.append(entry)
    return out
