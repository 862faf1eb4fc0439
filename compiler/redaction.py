"""What `redact(...)` can lower: which detectors of the runtime's scrubber cover which label.

One table, read by both sides. The label analysis (compiler/analysis/labels.py) lowers at a
`redact(x)` exactly the labels of ``x`` that are listed here and keeps every other one on the
result (warning V3007); the scrubber (runtime/pii.py) has a detector for each kind named here,
which tests/test_pii.py checks. A label is covered only when the scrubber finds every kind of
data the label stands for: `pii` is not only e-mail addresses, so it takes all nine kinds below.

This module is a leaf shared with the runtime (tests/test_layering.py): it imports nothing of the
compiler.

>>> sorted(lowered_by_redact({"pii", "phi"})), sorted(kept_by_redact({"pii", "phi"}))
(['pii'], ['phi'])
"""

from __future__ import annotations

from typing import Iterable

# label -> the detector kinds (runtime/pii.py) that together cover it
DETECTORS_OF_LABEL: dict[str, tuple[str, ...]] = {
    "pii": ("NAME", "ADDRESS", "EMAIL", "PHONE", "DOB", "SSN", "NINO", "NIR", "IP"),
    "payment": ("CARD", "IBAN"),
    "secret": ("SECRET",),
}

# what each kind is, in words, for diagnostics and the spec
KIND_WORDS: dict[str, str] = {
    "NAME": "person names",
    "ADDRESS": "street addresses",
    "EMAIL": "e-mail addresses",
    "PHONE": "phone numbers",
    "DOB": "dates of birth",
    "SSN": "US social security numbers",
    "NINO": "UK national insurance numbers",
    "NIR": "French social security numbers",
    "IP": "IP addresses",
    "CARD": "card numbers",
    "IBAN": "IBANs",
    "SECRET": "API keys and secrets",
}

REDACTABLE: frozenset[str] = frozenset(DETECTORS_OF_LABEL)


def lowered_by_redact(labels: Iterable[str]) -> frozenset[str]:
    """The labels of ``labels`` that `redact` removes: those its detectors cover."""
    return frozenset(labels) & REDACTABLE


def kept_by_redact(labels: Iterable[str]) -> frozenset[str]:
    """The labels of ``labels`` that stay on `redact`'s result: no detector covers them."""
    return frozenset(labels) - REDACTABLE


def detectors_for(labels: Iterable[str]) -> tuple[str, ...]:
    """The detector kinds that scrub for ``labels``, in the table's order.

    >>> detectors_for({"payment", "phi"})
    ('CARD', 'IBAN')
    """
    wanted = frozenset(labels)
    return tuple(kind for label, kinds in DETECTORS_OF_LABEL.items() if label in wanted for kind in kinds)
