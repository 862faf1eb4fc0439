"""Precision, recall and speed of the PII scrubber behind `redact()` on a labelled faker corpus.

    python bench/pii_scrubber.py [--sentences 20000] [--seed 7] [--repeat 3] [--json]

The corpus is built from faker in several locales (en_US, en_GB, de_DE, fr_FR, nl_NL, es_ES,
it_IT): filler sentences with entities embedded at known offsets, each in one of several
templates (some with a cue word like "call" or "IBAN", some without), rendered in the ways people
write them (cards and IBANs compact or grouped). Hard negatives are embedded the same way and
labelled: order ids (including bare 10-digit ones), dates, times, prices, versions, ISBNs,
UUIDs, ZIP codes, tracking numbers, big numbers, coordinates, quantities, hashes.

Scoring, per entity kind:
  * recall: labelled entities entirely covered by a finding of the same kind;
  * removed: labelled entities entirely covered by any finding (what matters to privacy);
  * precision: findings that overlap a labelled entity of their kind, over all findings of it.
Speed: MB/s of `scrub()` over the whole corpus (best of --repeat), and over the filler text alone.

Two faker quirks are corrected rather than counted: faker's en_GB national insurance numbers all
use the prefix ZZ and suffix T, which HMRC never issues, so NINOs are generated here with valid
prefixes; and faker's de_DE phone numbers may start with 00 (the international prefix, never a
German area code); those are drawn again.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
import uuid
from collections import Counter, defaultdict

from faker import Faker

from vox.runtime.pii import find_pii, scrub

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT")

TEMPLATES = {
    "EMAIL": ["Write to {} for details.", "Contact: {}", "cc {} please", "{} wrote yesterday.", "(reply-to <{}>)"],
    "PHONE": ["Call me at {} tomorrow.", "Phone: {}", "You can reach her on {}.", "Tel. {} (office)", "Mobile {}", "Her number is {}.", "{} is the hotline.", "Number changed to {} last week."],
    "CARD": ["Card {} was charged.", "Paid with {}.", "card number: {}", "The customer's card {} expired."],
    "IBAN": ["IBAN: {}", "Please transfer to {} by Friday.", "Account {} was closed.", "Refund goes to {}."],
    "IP": ["Login from {} failed.", "IP {}", "The request came from {}.", "Blocked {} at the firewall."],
    "SSN": ["SSN {}", "Social security number: {}", "Her SSN is {}.", "ID {} on file"],
    "NINO": ["NI number {}", "National Insurance: {}", "NINO {} on file."],
    "NIR": ["Numéro de sécurité sociale : {}", "NIR {}", "Assuré n° {}."],
}

NEGATIVE_TEMPLATES = ["Order {} has shipped.", "See {}.", "Ref {}", "Updated on {}.", "It costs {}.", "Version {} is out.", "{} in stock", "noted: {}"]


def _nino(rng: random.Random) -> str:
    first = "ABCEGHJKLMNOPRSTWXYZ"
    second = "ABCEGHJKLMNPRSTWXYZ"
    while True:
        prefix = rng.choice(first) + rng.choice(second)
        if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            break
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{prefix}{digits}{suffix}"


def _group(s: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(s[i : i + size] for i in range(0, len(s), size))


def _card(fk: Faker, rng: random.Random) -> str:
    n = fk.credit_card_number()
    style = rng.random()
    if style < 0.4:
        return n
    sep = " " if style < 0.75 else "-"
    if len(n) == 15:  # amex style 4-6-5
        return sep.join((n[:4], n[4:10], n[10:]))
    return _group(n, 4, sep)


def _iban(fk: Faker, rng: random.Random) -> str:
    iban = fk.iban()
    return _group(iban) if rng.random() < 0.5 else iban


def _phone(fk: Faker, locale: str) -> str:
    for _ in range(20):
        p = fk.phone_number()
        if locale == "de_DE" and p.lstrip("(").startswith("00"):
            continue
        return p
    return p


def _ip(fk: Faker, rng: random.Random) -> str:
    r = rng.random()
    return fk.ipv4_public() if r < 0.4 else fk.ipv4_private() if r < 0.7 else fk.ipv6()


def _negative(fk: Faker, rng: random.Random) -> str:
    d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    date = fk.date_between("-5y", "+1y")
    choices = [
        lambda: f"ORD-{date.year}-{d(6)}",
        lambda: f"#{d(5)}-{d(4)}",
        lambda: rng.choice("123456789") + d(9),  # a bare 10-digit order number
        lambda: f"INV-{d(9)}",
        lambda: date.isoformat(),
        lambda: date.strftime("%d.%m.%Y"),
        lambda: date.strftime("%m/%d/%Y"),
        lambda: date.strftime("%d/%m/%Y") + f" {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        lambda: date.strftime("%B %d, %Y"),
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        lambda: f"${rng.randint(1, 99_999):,}.{d(2)}",
        lambda: f"{rng.randint(1, 999)}.{d(3)},{d(2)} €",
        lambda: f"£{rng.randint(1, 999)}.{d(2)}",
        lambda: f"{rng.randint(1, 9)} {d(3)} {d(3)},{d(2)} €",
        lambda: f"v{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 99)}",
        lambda: f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 20000)}",
        lambda: f"978-{rng.randint(0, 9)}-{d(2)}-{d(6)}-{rng.randint(0, 9)}",
        lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        lambda: fk.postcode(),
        lambda: f"1Z{d(3)}{rng.choice('ABCDEFGH')}{rng.choice('ABCDEFGH')}{d(10)}",
        lambda: f"{rng.randint(1, 999):,},{d(3)},{d(3)}",
        lambda: f"{rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}",
        lambda: f"{rng.randint(1, 12)} x {rng.choice((250, 500, 750))} ml",
        lambda: "%040x" % rng.getrandbits(160),
        lambda: f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%",
        lambda: f"{d(3)} {d(3)} {d(3)}",  # a number grouped in thousands
        lambda: f"{rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-{date.year} {rng.randint(0, 23):02d}:00",
    ]
    return rng.choice(choices)()


def build_corpus(n_sentences: int, seed: int) -> tuple[str, list[tuple[str, int, int]], str]:
    """The corpus text, its labels (kind or NEG, start, end), and the filler text alone."""
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, fk in enumerate(fakers.values()):
        fk.seed_instance(seed + i)
    parts: list[str] = []
    filler: list[str] = []
    labels: list[tuple[str, int, int]] = []
    pos = 0

    def add(s: str) -> None:
        nonlocal pos
        parts.append(s)
        pos += len(s)

    kinds = list(TEMPLATES)
    for _ in range(n_sentences):
        locale = rng.choice(LOCALES)
        fk = fakers[locale]
        sentence = fk.sentence(nb_words=rng.randint(5, 14))
        filler.append(sentence)
        add(sentence + " ")
        r = rng.random()
        if r < 0.55:
            kind = rng.choice(kinds)
            if kind == "EMAIL":
                value = rng.choice((fk.email, fk.free_email, fk.company_email))()
            elif kind == "PHONE":
                loc = rng.choice(("en_US", "en_GB", "de_DE", "fr_FR"))
                value = _phone(fakers[loc], loc)
            elif kind == "CARD":
                value = _card(fk, rng)
            elif kind == "IBAN":
                value = _iban(fk, rng)
            elif kind == "IP":
                value = _ip(fk, rng)
            elif kind == "SSN":
                value = fakers["en_US"].ssn()
            elif kind == "NINO":
                value = _nino(rng)
            else:
                value = fakers["fr_FR"].ssn()
            template = rng.choice(TEMPLATES[kind])
        elif r < 0.85:
            kind = "NEG"
            value = _negative(fk, rng)
            template = rng.choice(NEGATIVE_TEMPLATES)
        else:
            continue
        before, after = template.split("{}")
        add(before)
        labels.append((kind, pos, pos + len(value)))
        add(value)
        add(after + " ")
    return "".join(parts), labels, " ".join(filler)


def score(text: str, labels: list[tuple[str, int, int]]) -> dict[str, dict[str, float]]:
    findings = find_pii(text)
    starts = [f.start for f in findings]
    import bisect

    def covering(start: int, end: int):
        i = bisect.bisect_right(starts, start) - 1
        out = []
        while i >= 0 and i < len(findings) and findings[i].start < end:
            f = findings[i]
            if f.end > start:
                out.append(f)
            i += 1
        return out

    stats: dict[str, Counter] = defaultdict(Counter)
    misses: dict[str, list[str]] = defaultdict(list)
    matched: set[int] = set()
    by_finding = {id(f): f for f in findings}
    for kind, start, end in labels:
        fs = covering(start, end)
        for f in fs:
            matched.add(id(f))
        if kind == "NEG":
            continue
        stats[kind]["n"] += 1
        if any(f.kind == kind and f.start <= start and f.end >= end for f in fs):
            stats[kind]["tp"] += 1
        elif len(misses[kind]) < 8:
            misses[kind].append(text[start:end])
        if fs and min(f.start for f in fs) <= start and max(f.end for f in fs) >= end:
            stats[kind]["removed"] += 1
    labelled = {(k, s, e) for k, s, e in labels if k != "NEG"}
    label_spans = sorted(labels, key=lambda x: x[1])
    label_starts = [s for _, s, _ in label_spans]
    false_pos: dict[str, list[str]] = defaultdict(list)
    for f in findings:
        stats[f.kind]["found"] += 1
        i = bisect.bisect_right(label_starts, f.start) - 1
        ok = False
        for j in range(max(i - 1, 0), min(i + 2, len(label_spans))):
            k, s, e = label_spans[j]
            if k == f.kind and s < f.end and f.start < e and (k, s, e) in labelled:
                ok = True
        if ok:
            stats[f.kind]["true_found"] += 1
        elif len(false_pos[f.kind]) < 8:
            false_pos[f.kind].append(text[max(0, f.start - 15) : f.end + 5])
    del by_finding
    out: dict[str, dict[str, float]] = {}
    for kind in TEMPLATES:
        c = stats[kind]
        out[kind] = {
            "n": c["n"],
            "recall": c["tp"] / c["n"] if c["n"] else 1.0,
            "removed": c["removed"] / c["n"] if c["n"] else 1.0,
            "precision": c["true_found"] / c["found"] if c["found"] else 1.0,
            "false_positives": c["found"] - c["true_found"],
            "misses": misses[kind],
            "fp_examples": false_pos[kind],
        }
    return out


def throughput(text: str, repeat: int) -> float:
    data = text.encode("utf-8")
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        scrub(text)
        best = min(best, time.perf_counter() - t0)
    return len(data) / best / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--examples", action="store_true", help="print missed entities and false positives")
    args = ap.parse_args(argv)
    text, labels, filler = build_corpus(args.sentences, args.seed)
    results = score(text, labels)
    mbps = throughput(text, args.repeat)
    filler_mbps = throughput(filler, args.repeat)
    negatives = sum(1 for k, _, _ in labels if k == "NEG")
    if args.json:
        print(json.dumps({"bytes": len(text.encode()), "mb_per_s": mbps, "filler_mb_per_s": filler_mbps, "negatives": negatives, "kinds": results}, indent=2))
        return 0
    print(f"corpus: {len(text.encode()) / 1e6:.2f} MB, {len(labels) - negatives} entities, {negatives} hard negatives, locales {', '.join(LOCALES)}")
    print(f"{'kind':6} {'n':>6} {'precision':>10} {'recall':>8} {'removed':>8} {'FP':>5}")
    for kind, r in results.items():
        print(f"{kind:6} {r['n']:>6} {r['precision']:>10.4f} {r['recall']:>8.4f} {r['removed']:>8.4f} {r['false_positives']:>5}")
    print(f"speed: {mbps:.1f} MB/s on the corpus, {filler_mbps:.1f} MB/s on its filler text alone (best of {args.repeat})")
    if args.examples:
        for kind, r in results.items():
            if r["misses"]:
                print(f"missed {kind}: {r['misses']}")
            if r["fp_examples"]:
                print(f"false {kind}: {r['fp_examples']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
