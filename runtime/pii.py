"""The PII scrubber behind ``redact()``: compiled patterns, each candidate checked before it counts.

:func:`scrub` finds personal data in text and replaces each finding with a typed placeholder:

=========  ===============  =====================================================================
kind       placeholder      what counts
=========  ===============  =====================================================================
EMAIL      ``[EMAIL]``      ``local@domain.tld`` (Unicode letters allowed)
IBAN       ``[IBAN]``       country code, length from the IBAN registry table, mod-97 check
CARD       ``[CARD]``       13-19 digits, or 12-19 in groups (spaces or dashes), first digit
                            2-6 (or JCB's 1800), Luhn check
IP         ``[IP]``         IPv4 (each octet 0-255) and IPv6 (validated by ``ipaddress``)
SSN        ``[SSN]``        US social security number ``123-45-6789`` (or spaces): area not
                            000, 666 or 9xx, group not 00, serial not 0000; nine bare digits only
                            next to "SSN" or "social security"
NINO       ``[NINO]``       UK national insurance number, HMRC prefix rules, suffix A-D
NIR        ``[NIR]``        French social security number (15 digits), mod-97 key
PHONE      ``[PHONE]``      see below
=========  ===============  =====================================================================

Phone numbers are the hard part: they look like dates, order numbers, prices, versions. A
candidate is a run of digit groups joined by single separators (space, ``-``, ``.``, ``/``,
parentheses), with an optional extension (``x123``, ``ext. 12``). It counts when:

* it starts with ``+`` or ``00`` and a country code, and has 8-15 digits after it (E.164), a
  trunk ``(0)`` allowed (``+44 (0)20 7946 0123``);
* it starts with ``0`` (a national number in the UK, Germany, France, ...) and has 10-12 digits,
  unless it reads as a date (``01.02.2024 10``);
* it has the North-American shape ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``,
  ``1-555-123-4567`` (area code starting 2-9);
* it is ten bare digits that are a valid North-American number (area code and exchange starting
  2-9), or eleven starting with 1, *and* a word like "phone",
  "call", "tel", "mobile", "fax" precedes it closely: ten bare digits are as often an order
  number as a phone number.

Everything else with digits is left alone. When a run fails as a whole, its space-separated parts
are tried, so ``Call 555-123-4567 2024`` still finds the phone.

Overlaps are resolved by priority (the order of the table); offsets in :class:`Finding` are in
the original text. The scrubber is fail-closed: :func:`scrub_value` raises
:class:`ScrubError` on a value it does not know how to scrub rather than let it through.

>>> scrub("Mail jo@example.com or call (555) 123-4567.").text
'Mail [EMAIL] or call [PHONE].'
>>> scrub("Order 2024-03-15, $1,234.56, v3.11.7").findings
()
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Callable, Iterator

PLACEHOLDERS = {
    "EMAIL": "[EMAIL]",
    "IBAN": "[IBAN]",
    "CARD": "[CARD]",
    "IP": "[IP]",
    "SSN": "[SSN]",
    "NINO": "[NINO]",
    "NIR": "[NIR]",
    "PHONE": "[PHONE]",
}


class ScrubError(Exception):
    """The scrubber could not process a value; the call that wanted it must stop (fail closed)."""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Scrubbed:
    text: str
    findings: tuple[Finding, ...]


# -- checksums -------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """The Luhn check of payment card numbers.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# IBAN lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_ok(iban: str) -> bool:
    """Country length and the ISO 13616 mod-97 check (``iban`` without spaces, upper case).

    >>> iban_ok("GB82WEST12345698765432"), iban_ok("GB82WEST12345698765433")
    (True, False)
    """
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    moved = iban[4:] + iban[:4]
    n = 0
    for ch in moved:
        n = (n * 100 + (ord(ch) - 55)) % 97 if ch.isalpha() else (n * 10 + (ord(ch) - 48)) % 97
    return n == 1


def nir_ok(digits: str) -> bool:
    """French NIR: 13 characters (Corsica writes 2A/2B) and a key of 97 - (number mod 97)."""
    body, key = digits[:13], digits[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    if not body.isdigit() or not key.isdigit():
        return False
    return 97 - int(body) % 97 == int(key)


# -- detectors -------------------------------------------------------------------------------
# Each yields (start, end) of validated findings; scrub() resolves overlaps by priority.

# Patterns start with a plain character class and check the character before it in a lookbehind
# placed after that first character: a leading lookbehind would stop the regex engine from
# skipping ahead to possible first characters, which costs about 3x.

_LOCAL_CHARS = frozenset("._%+-")
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    at = text.find("@")
    while at != -1:
        start = at
        while start > 0 and at - start < 64:
            ch = text[start - 1]
            if ch.isalnum() or ch == "_" or ch in _LOCAL_CHARS:
                start -= 1
            else:
                break
        while start < at and text[start] == ".":
            start += 1
        m = _EMAIL_DOMAIN.match(text, at + 1)
        if m and start < at and text[at - 1] != "." and ".." not in text[start:at]:
            yield start, m.end()
            at = text.find("@", m.end())
        else:
            at = text.find("@", at + 1)


_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9].)[A-Z]\d{2}(?: ?[A-Z0-9]){11,31}")


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        start = m.start()
        want = IBAN_LENGTHS.get(text[start : start + 2])
        if want is None:
            continue
        compact: list[str] = []
        end = start
        for i in range(start, m.end()):
            ch = text[i]
            if ch != " ":
                compact.append(ch)
                if len(compact) == want:
                    end = i + 1
                    break
        if len(compact) != want:
            continue
        if end < len(text) and text[end].isalnum():
            continue
        if iban_ok("".join(compact)):
            yield start, end


_CARD = re.compile(r"[1-6](?<![\w+.,/-].)\d{3}(?:[ -]?\d){8,15}(?![\w]|[.,/-]\d)")


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        s = m.group(0)
        seps = {c for c in s if c in " -"}
        if len(seps) > 1:
            continue
        digits = s.replace(" ", "").replace("-", "")
        if seps:
            groups = re.split(r"[ -]", s)
            # cards are grouped 4-4-4-4, 4-6-5, 4-4-4-4-3, ...: short groups only at the end
            if any(len(g) < 3 for g in groups[:-1]):
                continue
        elif len(digits) < 13:
            continue
        if digits[0] == "1" and not (digits.startswith("1800") and len(digits) == 15):  # JCB's old range
            continue
        if 12 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            yield m.span()


_IPV4 = re.compile(r"\d(?<![\w.].)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f:]")
_IPV6_TAIL = re.compile(r"[0-9A-Fa-f:.]*(?:%[\w.]+)?")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:.")


def _octets_ok(s: str) -> bool:
    for part in s.split("."):
        if int(part) > 255 or (len(part) > 1 and part[0] == "0"):
            return False
    return True


def _ips(text: str) -> Iterator[tuple[int, int]]:
    done = 0
    for m in _IPV6_HINT.finditer(text):
        if m.start() < done:
            continue
        start = m.start()
        while start > 0 and text[start - 1] in _HEX_COLON and m.start() - start < 40:
            start -= 1
        end = _IPV6_TAIL.match(text, m.start()).end()  # type: ignore[union-attr]
        done = end
        s = text[start:end].rstrip(".")
        end = start + len(s)
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_:."):
            continue
        if end < len(text) and (text[end].isalnum() or text[end] in "_:"):
            continue
        if s.count(":") < 2 or not any(c.isdigit() for c in s) or sum(1 for g in s.split(":") if g) < 2:
            continue
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            continue
        yield start, end
    if "." in text:
        for m in _IPV4.finditer(text):
            if _octets_ok(m.group(0)):
                yield m.span()


_SSN = re.compile(r"[0-8](?<![\w-].)\d{2}(?<!000)(?<!666)([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w]|-\d)")
_SSN_BARE = re.compile(r"[0-8](?<![\w-].)\d{2}(?<!000)(?<!666)(?!00)\d{2}(?!0000)\d{4}(?![\w-])")
# Spelled-out cases rather than IGNORECASE: a plain first character class lets the engine skip.
_SSN_WORDS = re.compile(r"[Ss](?:[Ss][Nn]|SN|ocial [Ss]ecurity|OCIAL SECURITY|oc\.? [Ss]ec)")


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN.finditer(text):
        yield m.span()
    for w in _SSN_WORDS.finditer(text):  # nine bare digits count only just after such a word
        m = _SSN_BARE.search(text, w.end(), w.end() + 40)
        if m:
            yield m.span()


# First letter not D F I Q U V, second not D F I O Q U V; BG GB KN NK NT TN ZZ never allocated.
_NINO = re.compile(
    r"[A-CEGHJ-PR-TW-Z](?<!\w.)[A-CEGHJ-NPR-TW-Z](?<!BG|GB|KN|NK|NT|TN|ZZ) ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])"
)


def _ninos(text: str) -> Iterator[tuple[int, int]]:
    for m in _NINO.finditer(text):
        yield m.span()


_NIR = re.compile(r"[12](?<!\w.) ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\w])")


def _nirs(text: str) -> Iterator[tuple[int, int]]:
    for m in _NIR.finditer(text):
        if nir_ok(m.group(0).replace(" ", "")):
            yield m.span()


# A run of digit groups joined by one separator each; parentheses may wrap a group; an extension
# may follow. Not glued to a word, a sign, a currency or another number.
_PHONE = re.compile(
    r"[+(\d](?<![\w+#$€£¥@/.,:-].)(?<!\d .)"
    r"(?:(?<=\+) ?\d+|(?<=\()\d+|(?<=\d)\d*)(?:(?:[ .\-/]|\) ?[.\-]? ?|[ .\-]?\()\d+)*\)?"
    r"(?: ?(?:x|ext\.?|extn\.?|extension) ?\d{1,6})?"
    r"(?![\w%€$£]|[.,\-/:]\d| ?(?:%|€|EUR|USD|GBP|ml|kg|km|g)\b)"
)
_NON_DIGIT = re.compile(r"\D+")
_DIGIT_GROUP = re.compile(r"\d+")
_EXTENSION = re.compile(r" ?(?:x|ext\.?|extn\.?|extension) ?\d{1,6}$")
_PHONE_WORDS = re.compile(r"phone|call|tel\b|tel\.|telephone|mobile|cell|fax|whatsapp|sms|text me|reach", re.IGNORECASE)
_DATE_START = re.compile(r"^(?:\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}[./-]\d{1,2}[./-]\d{1,2})(?:\D|$)")
_NANP = re.compile(r"^1?[2-9]\d\d[2-9]\d{6}$")


def _phone_ok(s: str, text: str, start: int) -> bool:
    """Whether the candidate ``s`` (found at ``start`` in ``text``) is a phone number."""
    if len(s) < 7:
        return False
    core = _EXTENSION.sub("", s) if ("x" in s or "e" in s) else s
    digits = _NON_DIGIT.sub("", core)
    n = len(digits)
    if n < 7 or n > 17:
        return False
    if core.startswith("+") or (core.startswith("00") and not core.startswith("000")):
        intl = _NON_DIGIT.sub("", core.replace("(0)", "", 1))  # drop a trunk "(0)": +44 (0)20 ...
        if core.startswith("00"):
            intl = intl[2:]
        return intl[:1] != "0" and 8 <= len(intl) <= 15
    if _DATE_START.match(core.lstrip("(")) and len(_DIGIT_GROUP.findall(core)) <= 4:
        return False  # a date, perhaps with an hour after it; 01.23.45.67.89 is a French phone
    seps = re.findall(r"[^\d]+", core.strip("()"))
    if core.lstrip("(").startswith("0"):
        if core.lstrip("(").startswith("00") or not 10 <= n <= 12:
            return False
        # grouped national numbers: the first group is the area code (2-5 digits with the 0)
        first = re.match(r"\(?(\d+)", core).group(1)  # type: ignore[union-attr]
        return not seps or 2 <= len(first) <= 6 or len(first) == n
    if not seps:  # bare digits: only with a phone word just before
        return bool(_NANP.match(digits)) and bool(_PHONE_WORDS.search(text, max(0, start - 32), start))
    groups = [len(g) for g in _DIGIT_GROUP.findall(core)]
    if groups == [3, 3, 4] or (groups == [1, 3, 3, 4] and digits[0] == "1"):
        if len({x.strip(" ()") for x in seps} - {""}) > 1:
            return False  # 555-123.4567: mixed separators are not how phones are written
        return digits[-10] in "23456789"  # the area code; exchanges like 555-123-4567 are common in text
    return False



def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        s = m.group(0)
        if len(s) < 7:  # most candidates: years, amounts, counts
            continue
        start = m.start()
        if _phone_ok(s, text, start):
            end = m.end()
            if s.endswith(")") and s.count(")") > s.count("("):
                end -= 1  # "(call 555-123-4567)": the parenthesis is the sentence's
            yield start, end
            continue
        if " " not in s:
            continue
        # try the space-separated parts: "555-123-4567 2024", "3 555-123-4567"
        parts = [(p.start(), p.end()) for p in re.finditer(r"[^ ]+", s)]
        i = 0
        while i < len(parts):
            for j in range(len(parts), i, -1):
                if i == 0 and j == len(parts):
                    continue
                a, b = parts[i][0], parts[j - 1][1]
                piece = s[a:b]
                # only a piece written like a phone (not a bare group of digits) is carved out
                if (piece[0] in "+(" or any(c in "-.()/" for c in piece)) and _phone_ok(piece, text, start + a):
                    yield start + a, start + b
                    i = j - 1
                    break
            i += 1


DETECTORS: tuple[tuple[str, Callable[[str], Iterator[tuple[int, int]]]], ...] = (
    ("EMAIL", _emails),
    ("IBAN", _ibans),
    ("NIR", _nirs),  # before CARD: mod-97 is a stronger check than Luhn, and both take 15 digits
    ("CARD", _cards),
    ("IP", _ips),
    ("SSN", _ssns),
    ("NINO", _ninos),
    ("PHONE", _phones),
)


def find_pii(text: str) -> list[Finding]:
    """All findings in ``text``, sorted by position, without overlaps (higher priority wins)."""
    if not isinstance(text, str):
        raise ScrubError(f"cannot scrub a {type(text).__name__}: expected text")
    starts: list[int] = []
    ends: list[int] = []
    kinds: list[str] = []
    for kind, detect in DETECTORS:
        for start, end in detect(text):
            if end <= start:
                continue
            i = bisect_left(starts, start)
            if i > 0 and ends[i - 1] > start:
                continue
            if i < len(starts) and starts[i] < end:
                continue
            starts.insert(i, start)
            ends.insert(i, end)
            kinds.insert(i, kind)
    return [Finding(k, s, e) for k, s, e in zip(kinds, starts, ends)]


def scrub(text: str) -> Scrubbed:
    """Replace every finding by its placeholder. Offsets in ``findings`` refer to ``text``."""
    try:
        findings = find_pii(text)
    except ScrubError:
        raise
    except Exception as e:  # a bug in a detector must stop the call, never let text through
        raise ScrubError(f"PII scrubber failed: {type(e).__name__}: {e}") from e
    if not findings:
        return Scrubbed(text, ())
    out: list[str] = []
    pos = 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(PLACEHOLDERS[f.kind])
        pos = f.end
    out.append(text[pos:])
    return Scrubbed("".join(out), tuple(findings))


def scrub_value(value: Any) -> Any:
    """Scrub a runtime value: strings, and the strings inside lists, tuples and dicts (keys too).

    Numbers whose digits read as PII (a card number held as an ``int``) become the placeholder
    text; other numbers, booleans and ``None`` pass unchanged. Anything else raises
    :class:`ScrubError`: the scrubber fails closed.

    >>> scrub_value({"to": "jo@example.com", "n": 3, "tags": ["ip 10.0.0.1", None]})
    {'to': '[EMAIL]', 'n': 3, 'tags': ['ip [IP]', None]}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return scrub(value).text
    if isinstance(value, int):
        if abs(value) < 10_000_000:  # too short for any kind above
            return value
        s = scrub(str(value))
        return s.text if s.findings else value
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        return [scrub_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub_value(v) for v in value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = scrub(k).text if isinstance(k, str) else k
            if key in out:
                raise ScrubError("scrubbing made two keys of a record equal; refusing to merge them")
            out[key] = scrub_value(v)
        return out
    raise ScrubError(f"cannot scrub a value of type {type(value).__name__}")
