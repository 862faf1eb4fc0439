"""The PII scrubber behind ``redact()``: compiled patterns, each candidate checked before it counts.

:func:`scrub` finds personal data in text and replaces each finding with a typed placeholder
(which labels each kind lets `redact` lower is the table in compiler/redaction.py):

=========  ===============  =====================================================================
kind       placeholder      what counts
=========  ===============  =====================================================================
SECRET     ``[SECRET]``     an API key with a well-known prefix (``sk-``, ``sk-ant-``, ``ghp_``,
                            ``github_pat_``, ``AKIA``, ``xoxb-``, ``AIza``, ``glpat-``,
                            ``sk_live_``, ``hf_``, ``npm_``), a JSON web token, a PEM private key;
                            or a random-looking token just after "key", "token", "secret",
                            "bearer" (16+ characters with letters and digits, mixed case or 32+
                            long without words; or 32+ hex digits), or after "password" (6+
                            characters with letters and digits, or 8+ with a symbol)
EMAIL      ``[EMAIL]``      ``local@domain.tld`` (Unicode letters allowed)
IBAN       ``[IBAN]``       country code, length from the IBAN registry table, mod-97 check
NIR        ``[NIR]``        French social security number (15 digits), mod-97 key
CARD       ``[CARD]``       13-19 digits, or 12-19 in groups (spaces or dashes), first digit
                            2-6 (or JCB's 1800), Luhn check
IP         ``[IP]``         IPv4 (each octet 0-255) and IPv6 (validated by ``ipaddress``)
SSN        ``[SSN]``        US social security number ``123-45-6789`` (or spaces): area not
                            000, 666 or 9xx, group not 00, serial not 0000; nine bare digits only
                            next to "SSN" or "social security"
NINO       ``[NINO]``       UK national insurance number, HMRC prefix rules, suffix A-D
DOB        ``[DOB]``        a valid date (numeric, "3 March 1984", "March 3, 1984", a month and
                            year, a year) at most three words after "born", "DOB", "date of
                            birth", "birthday", "né(e)", "geboren", "Geburtsdatum", "date de
                            naissance", with no other number or sentence end in between
ADDRESS    ``[ADDRESS]``    a house number, 1-4 capitalised words and a street word
                            (``221B Baker Street``, ``12 N Main St``), a German street word and
                            number (``Hauptstraße 5``, ``Karl-Marx-Allee 12a``), a French number
                            and street (``12, rue de la Paix``); a unit and a postcode with its
                            town that follow are part of it
PHONE      ``[PHONE]``      see below
NAME       ``[NAME]``       see below
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

Names are found by context first: up to four capitalised words (initials and particles such as
"van" or "de" between) after an abbreviated honorific (``Mr``, ``Mrs``, ``Ms``, ``Dr``, ``Prof``,
``Mme``, ...), after "my name is", "name:", "Dear", "signed:", "regards," or "sincerely," (and
their French and German forms); and, when one of the words is a known first or last name, after a
title that is also a noun ("Herr", "Frau", "Sir"), "Hi", "Hello", "Thanks,", "this is", "I am",
"written by", "from:". Without context, a capitalised "First Last" pair counts when First is a
known first name and Last a known last name (an initial, a middle name or a particle between),
unless both are also everyday words (``Will Power``, ``May Day``, ``Chase Bank``). The names are
those of ``names.txt`` beside this module, made from faker's lists for 21 locales; nothing is
downloaded. A lone first name without context ("Jane called") is left alone, and so are role words
after a cue (``Dear Customer``, ``Kind regards, The Support Team``).

Overlaps are resolved by priority (the order of the table): a finding that overlaps one of a
kind above it is dropped, so the longer, structured kinds come first. Offsets in
:class:`Finding` are in the original text. The scrubber is fail-closed: :func:`scrub_value` raises
:class:`ScrubError` on a value it does not know how to scrub rather than let it through.

>>> scrub("Mail jo@example.com or call (555) 123-4567.").text
'Mail [EMAIL] or call [PHONE].'
>>> scrub("Order 2024-03-15, $1,234.56, v3.11.7").findings
()
>>> scrub("Dear Mr Okafor, your parcel for 221B Baker Street, London NW1 6XE is late.").text
'Dear Mr [NAME], your parcel for [ADDRESS] is late.'
>>> scrub("Will Power and Grace Period ship May 2024 to 3 Tennis Court players.").findings
()
"""

from __future__ import annotations

import ipaddress
import math
import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Iterator

PLACEHOLDERS = {
    "SECRET": "[SECRET]",
    "EMAIL": "[EMAIL]",
    "IBAN": "[IBAN]",
    "CARD": "[CARD]",
    "IP": "[IP]",
    "SSN": "[SSN]",
    "NINO": "[NINO]",
    "NIR": "[NIR]",
    "DOB": "[DOB]",
    "ADDRESS": "[ADDRESS]",
    "PHONE": "[PHONE]",
    "NAME": "[NAME]",
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


# -- secrets ------------------------------------------------------------------------------------
# Keys with a well-known prefix count wherever they are; any other long token counts only just
# after a word like "key", "token" or "secret" and only when it looks random.

_SECRET_PREFIXED = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"  # GitHub
    r"|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"  # AWS access key ids
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|glpat-[0-9A-Za-z_-]{20,}"  # GitLab
    r"|[sr]k_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}"  # Hugging Face, npm
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # a JSON web token
    r")(?![\w-])"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_SECRET_CUE = re.compile(  # on the lower-case text, like _DOB_CUE
    r"(?P<word>k(?<![a-z0-9].)ey|t(?<![a-z0-9].)oken|s(?<![a-z0-9].)ecret|b(?<![a-z0-9].)earer"
    r"|p(?<![a-z0-9].)(?:assword|asswd|wd|assphrase)|c(?<![a-z0-9].)redentials?)(?![a-z0-9])"
    r"[\"'`]?(?:\s{0,3}(?::=|=>|[:=])\s{0,3}|\s(?:is\s|was\s)?)[\"'`]?"
)
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.~]{6,512}")
_PASSWORD_CUE = frozenset(("password", "passwd", "pwd", "passphrase"))


def _lower(text: str) -> str:
    """``text`` in lower case with the same offsets (a character whose lower case is longer, like
    "İ", stays as it is)."""
    lower = text.lower()
    if len(lower) == len(text):
        return lower
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_random(token: str, password: bool) -> bool:
    """Whether ``token`` (just after a word like "key") reads as a secret rather than a word or id."""
    letters, digits = any(c.isalpha() for c in token), any(c.isdigit() for c in token)
    if password:  # short will do, but not a word or a name in code ("password is wrong", "self.pwd")
        symbols = any(not c.isalnum() and c not in "_." for c in token)
        return len(token) >= 6 and letters and (digits or (symbols and len(token) >= 8))
    if not (letters and digits):
        return False
    if all(c in "0123456789abcdefABCDEF-" for c in token):
        return len(token.replace("-", "")) >= 32  # a hex digest or a UUID
    mixed = any(c.islower() for c in token) and any(c.isupper() for c in token)
    if len(token) < 16 or _entropy(token) < 3.0:
        return False
    # mixed case with digits reads as random; one case with digits only when long and without words
    return mixed or (len(token) >= 32 and not re.search(r"[a-z]{7}|[A-Z]{7}", token))


_SECRET_HINTS = ("sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "AKIA", "ASIA", "ABIA", "ACCA", "xox",
                 "AIza", "glpat-", "_live_", "_test_", "hf_", "npm_", "eyJ")
_SECRET_CUE_HINTS = ("key", "token", "secret", "bearer", "pass", "pwd", "credential")


def _secrets(text: str) -> Iterator[tuple[int, int]]:
    # substring tests first: most text has none of these, and they cost far less than the patterns
    if any(h in text for h in _SECRET_HINTS):
        yield from _prefixed_secrets(text)
    if "-----BEGIN" in text:
        for m in _PRIVATE_KEY.finditer(text):
            yield m.span()
    lower = _lower(text)
    if any(h in lower for h in _SECRET_CUE_HINTS):
        for cue in _SECRET_CUE.finditer(lower):  # "api_key=...", "Bearer ...", "the token is ..."
            m = _SECRET_TOKEN.match(text, cue.end())
            if m is None:
                continue
            token = m.group(0).rstrip(".,;")
            if _looks_random(token, cue.group("word") in _PASSWORD_CUE):
                yield m.start(), m.start() + len(token)


def _prefixed_secrets(text: str) -> Iterator[tuple[int, int]]:
    for m in _SECRET_PREFIXED.finditer(text):
        s = m.group(0)
        if s.startswith("sk-") and not (any(c.isdigit() for c in s[3:]) and any(c.isalpha() for c in s[3:])):
            continue  # "sk-learn-style-words-joined-by-dashes" is no key
        yield m.span()


# -- dates of birth ---------------------------------------------------------------------------

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
    "|januar|jänner|februar|märz|mai|juni|juli|oktober|dezember"
    "|janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre"
)
# matched against the text in lower case (same offsets, see _lower): a first-character class lets
# the engine skip, where IGNORECASE would try every position
_DOB_CUE = re.compile(
    r"(?:b(?<![\w].)(?:orn|irth\s*date|irthday)|d(?<![\w].)(?:\.?o\.?b\.?|ate\s+of\s+birth|ate\s+de\s+naissance)"
    r"|g(?<![\w].)(?:eboren|eb\.|eburtsdatum|eburtstag)|n(?<![\w].)(?:ée|é|ee))(?![\w])"
)
_DOB_DATE = re.compile(
    rf"(?i:(?<![\w.])(?:"
    rf"(?P<d1>\d{{1,2}})[./-](?P<m1>\d{{1,2}})[./-](?P<y1>\d{{4}}|\d{{2}})"
    rf"|(?P<y2>\d{{4}})[./-](?P<m2>\d{{1,2}})[./-](?P<d2>\d{{1,2}})"
    rf"|(?P<d3>\d{{1,2}})(?:st|nd|rd|th|er|\.)?\s(?:of\s)?(?:{_MONTHS})\.?,?\s(?P<y3>\d{{4}})"
    rf"|(?:{_MONTHS})\.?\s(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?,?\s(?P<y4>\d{{4}})"
    rf"|(?:{_MONTHS})\.?\s(?P<y5>\d{{4}})"
    rf"|(?P<y6>(?:19|20)\d\d)"
    rf")(?![\w]|[./-]\d))"
)


def _date_ok(m: re.Match) -> bool:
    g = m.groupdict()
    day = next((int(g[k]) for k in ("d1", "d2", "d3", "d4") if g[k]), 1)
    month = next((int(g[k]) for k in ("m1", "m2") if g[k]), 1)
    if g["d1"] and month > 12:  # 03/15/1984: month first
        day, month = month, day
    year = next((g[k] for k in ("y1", "y2", "y3", "y4", "y5", "y6") if g[k]), "")
    if len(year) == 4 and not 1870 <= int(year) <= 2100:
        return False
    return 1 <= day <= 31 and 1 <= month <= 12


_DOB_HINTS = ("born", "dob", "d.o.b", "birth", "geb", "né", "nee", "naissance")


def _dobs(text: str) -> Iterator[tuple[int, int]]:
    lower = _lower(text)
    if not any(h in lower for h in _DOB_HINTS):
        return
    for cue in _DOB_CUE.finditer(lower):
        # the date follows closely ("born on 3 March 1984", "DOB (dd/mm/yyyy): 03/04/1984"): three
        # words at most, no other number and no sentence end in between
        m = _DOB_DATE.search(text, cue.end(), cue.end() + 48)
        if m is None:
            continue
        between = text[cue.end() : m.start()]
        if any(c.isdigit() for c in between) or len(between.split()) > 3 or re.search(r"[.!?;]\s|\n\s*\n", between):
            continue
        if _date_ok(m):
            yield m.span()


# -- street addresses -------------------------------------------------------------------------
# A house number, one to four capitalised words and a street word ("221B Baker Street",
# "1600 Pennsylvania Ave NW, Washington, DC 20500"); the German order with the number after the
# street ("Hauptstraße 5", "Karl-Marx-Allee 12a, 10243 Berlin"); the French "12, rue de la Paix".
# A unit and a postcode (with its town) that follow are part of it.

_UP = "".join(chr(c) for c in range(0x41, 0x250) if chr(c).isupper())
_LO = "".join(chr(c) for c in range(0x61, 0x250) if chr(c).islower())
_TW = rf"(?:[{_UP}]['’])?[{_UP}][{_LO}]+(?:[{_UP}][{_LO}]+)?(?:-[{_UP}][{_LO}]+)*"  # O'Brien, McDonald, Saint-Honoré
_CAPS = rf"[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})*"

_STREET_WORDS = (
    "Street|St|Road|Rd|Avenue|Ave|Av|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Place|Pl|Court|Ct|Terrace|Ter"
    "|Close|Crescent|Cres|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Row|Grove|Gardens|Mews"
    "|Walk|Alley|Heights|Path|Pike|Ridge|Loop|Crossing|Plaza|Expressway|Freeway|Turnpike|Wharf|Quay"
    "|Embankment|Parade|Esplanade|Promenade|Rise|Vale"
)
_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)"
_UNIT = (r"(?:,?\s(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building|#)\.?\s?#?"
         r"[A-Za-z0-9-]{1,6}(?![\w]))")
_TOWN_LINK = r"(?:sur|sous|lès|les|le|la|am|an|der|im|in|bei|vorm|vor|ob|on|upon)(?!\w)"  # Frankfurt am Main
_TOWN = rf"(?:{_TW}|{_CAPS})(?:[ -](?:{_TW}|{_CAPS}|{_TOWN_LINK})){{0,3}}"
_POSTCODE_TAIL = (
    rf"(?:,?\s{_TOWN},?\s(?:[A-Z]{{2}}\s)?\d{{5}}(?:-\d{{4}})?(?!\w)"  # Springfield, IL 62704
    rf"|,?\s(?:{_TOWN},?\s)?[A-Z]{{1,2}}\d[A-Z\d]?\s?\d[A-Z]{{2}}(?!\w)"  # London NW1 6XE
    rf"|,?\s(?:[A-Z]{{1,2}}-)?\d{{4,5}}\s{_TOWN})"  # 10115 Berlin, 75002 Paris
)
_ADDRESS_EN = re.compile(
    rf"\d(?<![\w.,/#$€£-].)(?:\d{{0,4}}[A-Za-z]?(?:[-–]\d{{1,5}}[A-Za-z]?)?)(?![\w-]),?\s"
    rf"(?P<words>(?:(?:{_TW}|{_DIRECTION}\.?|\d{{1,3}}(?:st|nd|rd|th)|St\.?)\s){{1,4}})"
    rf"(?P<suffix>{_STREET_WORDS})\.?(?!\w)(?:\s{_DIRECTION}(?!\w))?"
)
_ADDRESS_EN_CAPS = re.compile(
    rf"\d(?<![\w.,/#$€£-].)(?:\d{{0,4}}[A-Z]?)(?![\w-]),?\s(?P<words>(?:[A-Z]{{2,}}\s){{1,4}})"
    rf"(?P<suffix>{_STREET_WORDS.upper()})\.?(?!\w)"
)
_DE_SUFFIX = r"straße|strasse|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|ring|steig|pfad"
_ADDRESS_DE = re.compile(
    rf"[{_UP}](?<![\w-].)(?:[{_LO}]+|[{_LO}]*(?:-(?:[{_UP}][{_LO}]+|[{_UP}]\.))+-)(?:{_DE_SUFFIX}|{_DE_SUFFIX.title()})"
    rf"|[{_UP}](?<![\w-].)[{_LO}]+(?:e[nrs]?)?\s(?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Chaussee)"
)
_DE_NUMBER = re.compile(r"\s\d{1,4}[a-z]?(?:\s?[-/]\s?\d{1,4}[a-z]?)?(?![\w,.]\d|\w)")
# German compounds that are no street: a seat, a workplace, a parking space, a seller
_NOT_A_STREET_DE = re.compile(
    r"(?i:(?:arbeits|sitz|stell|park|spiel|steh|liege|studien|ausbildungs|krippen|kita|camping|zelt|sport|abstell"
    r"|schreib|lager)platz|[klt]äufer)$"
)
# English words ending in -ring; a gerund ("Monitoring 24") is no street unless a name comes before
# the ring ("Haasering 6")
_ENGLISH_RING = frozenset(
    "spring string offspring hamstring bowstring drawstring shoestring herring earring bring wring during".split()
)
_GERUND = re.compile(r"[aeiou]ring$")
_ADDRESS_FR = re.compile(
    rf"\d(?<![\w.,/#$€£-].)\d{{0,3}}(?:\s?(?:bis|ter|[A-Z]))?(?![\w-]),?\s"
    rf"(?:rue|Rue|RUE|avenue|Avenue|av\.|Av\.|boulevard|Boulevard|bd|Bd|allée|Allée|impasse|Impasse|chemin|Chemin"
    rf"|quai|Quai|place|route|cours|square|passage|faubourg|Faubourg)\s"
    rf"(?:(?:de\sla|de\sl'|du|des|de|d'|la|le|les|l')\s?)?"
    rf"(?:{_TW}|[{_UP}]['’]{_TW})(?:\s(?:(?:de|du|des|la|le|les|d'|l')\s?)?(?:{_TW}|[{_UP}]['’]{_TW})){{0,3}}"
)
# street words that, after such a word, name no street: "2 TB Hard Drive", "5 Supreme Court justices"
_NOT_A_STREET_BEFORE = {
    "Court": frozenset("Supreme High District Federal Appeals Crown County Family Food Tennis Basketball Squash"
                       .split()),
    "Drive": frozenset("Hard Flash Thumb Disk Disc Solid External Optical Test Pen Network USB".split()),
    "Lane": frozenset("Fast Slow Express Memory Bus Bike Cycle Overtaking".split()),
    "Way": frozenset("Milky One Two Three Four Easy Best Only Right Wrong Same Other".split()),
    "Place": frozenset("First Second Third Fourth Fifth Last Market Work Meeting Safe Common Happy Hiding".split()),
    "Walk": frozenset("Cake Moon Space".split()),
    "Row": frozenset("Death Front Back".split()),
}
# words that make no street name anywhere in it: "Chapter 5 The Way Forward"
_NOT_A_STREET_WORD = frozenset("The A An My Your Our Their His Her Its This That No Any Every Each Another".split())
_UNIT_BEFORE = re.compile(r"(?:Flat|Apartment|Apt|Unit|Suite|Studio|Room)\.?\s#?[A-Za-z0-9-]{1,6},?\s$")
_TAIL = re.compile(rf"{_UNIT}?(?:{_POSTCODE_TAIL})?")


def _with_tail(text: str, end: int) -> int:
    m = _TAIL.match(text, end)
    return m.end() if m else end


def _addresses(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_ADDRESS_EN, _ADDRESS_EN_CAPS):
        for m in pattern.finditer(text):
            words = [w.title() for w in m.group("words").split()]
            suffix = m.group("suffix").title()
            if words[-1] in _NOT_A_STREET_BEFORE.get(suffix, ()) or _NOT_A_STREET_WORD.intersection(words):
                continue
            unit = _UNIT_BEFORE.search(text, max(0, m.start() - 24), m.start())
            yield (unit.start() if unit else m.start()), _with_tail(text, m.end())
    for m in _ADDRESS_FR.finditer(text):
        yield m.start(), _with_tail(text, m.end())
    for m in _ADDRESS_DE.finditer(text):
        n = _DE_NUMBER.match(text, m.end())
        if n is None:
            continue
        street = m.group(0)
        if " " not in street and (_NOT_A_STREET_DE.search(street) or street.lower() in _ENGLISH_RING
                                  or _GERUND.search(street) and _key(street[:-4]) not in _name_lists()[1]):
            continue
        yield m.start(), _with_tail(text, n.end())


# -- person names -----------------------------------------------------------------------------
# Context first, then known first and last names (see the module docstring). The lists are read
# from names.txt once, on the first scrub that needs them.

_NAME_WORD = rf"(?:[{_UP}]\.-)?{_TW}(?:-[{_UP}]\.)?"  # "H.-Dieter" and "Hans-J." too
_NAME_CAPS = rf"[{_UP}]{{2,}}(?:['’-][{_UP}]{{2,}})*"
_INITIAL = rf"[{_UP}]\."
_PARTICLE = (r"(?:van der|van den|van de|von der|von|van|de la|de los|de las|della|delle|del|dei|de|da|das|dos|di|du"
             r"|der|den|ter|ten|zu|le|la|bin|ibn|al|el|Van|Von|De|Da|Das|Dos|Di|Du|Del|Della|La|Le)")
# one name word, with where it starts and ends; a possessive 's stays outside
_NAME_TOKEN = re.compile(
    rf"[{_UP}](?<![\w@'’.-].)(?:\.-[{_UP}])?(?:['’][{_UP}])?[{_LO}]+(?:[{_UP}][{_LO}]+)?(?:-[{_UP}][{_LO}]+)*"
    rf"(?:-[{_UP}]\.)?"
    r"(?![\w@-]|\.\w|['’][^\Ws])"
)
# abbreviations take any capitalised word; titles that are also nouns ("die Frau", "the Doctor") a
# known name
_HONORIFIC = re.compile(
    r"(?<![\w.])(?:(?P<short>Mr|Mrs|Ms|Mx|Dr|Prof|Mme|Mlle|MR|MRS)\.?"
    r"|Miss|Herr|Frau|Monsieur|Madame|Mister|Doctor|Sir|Dame)"
    r"(?=[ \t])"
)
# strong cues take any capitalised words; weak ones need a known first or last name among them
_NAME_CUES = (
    r"(?P<strong>my\s+name\s+is|my\s+name's|(?:full\s+|first\s+|last\s+|sur|given\s+|patient\s+|customer\s+"
    r"|account\s+holder\s+|cardholder\s+)?name\s*:|signed\s*:|signed\s+by"
    r"|(?:kind|best|warm|warmest)\s+regards\s*,|regards\s*,"
    r"|yours\s+(?:sincerely|truly|faithfully)\s*,|sincerely\s*,|dear|je\s+m'appelle|mon\s+nom\s+est|nom\s*:|prénom\s*:"
    r"|ich\s+heiße|ich\s+heisse|mein\s+name\s+ist|vorname\s*:|nachname\s*:|mit\s+freundlichen\s+grüßen\s*,?"
    r"|cordialement\s*,"
    r"|viele\s+grüße\s*,?|bien\s+à\s+vous\s*,?)"
    r"|(?P<weak>(?:written|opened|reported|submitted|approved|sent|signed|filled\s+in|created|requested|raised)\s+by"
    r"|signed\s*,?|hi|hello|hey|thanks\s*,|thank\s+you\s*,|cheers\s*,|best\s*,|this\s+is|i\s+am|i'm|bonjour|hallo"
    r"|merci\s*,"
    r"|contact\s*:|from\s*:|patient\s*:|customer\s*:|cardholder\s*:|attn\s*:?|c/o)"
)
# Cues are looked for only just before a capitalised word, and only where the text before it ends
# in a cue's last character: scanning the whole text for fifty phrases would cost ten times more.
_NAME_CUE_BEFORE = re.compile(rf"(?i:(?<![\w])(?:{_NAME_CUES}))(?![\w])[ \t]*(?:\r?\n[ \t]*)?\Z")
_CUE_LAST_WORDS = frozenset(
    "is ist est am by dear hi hello hey bonjour hallo m'appelle heiße heisse i'm attn c/o signed grüßen grüße vous"
    .split()
)
_WORD_START = re.compile(rf"[{_UP}](?<![\w@'’.-].)")
_LOWER_NAME_CUE = re.compile(r"[Nn](?<![\w].)(?:ame|AME)(?:\s+(?:is|IS)|['’]s|\s*:)[ \t]*(?=[^\W\d_])")
_NOT_A_NAME = frozenset(
    """sir madam madame sirs ma'am mum mom dad customer customers client clients team support colleague colleagues
    friend friends all everyone everybody member members valued user users recipient applicant candidate student
    parent parents patient doctor manager hiring committee board there folks guys hello thanks thank regards best kind
    sincerely yours the a an our my your their this that these those support service services sales billing admin
    administrator management staff department office company inc ltd llc gmbh corp bank group account accounts owner
    holder unknown none anonymous test example user customer care helpdesk desk reception hr it security
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december not no yes ok okay please sorry again also just still here now today
    street road avenue lane drive way place court boulevard square terrace close crescent gardens hospital clinic
    university college school institute center centre foundation hotel airport station park museum library church
    cathedral hall stadium bridge tower building house palace castle river lake mountain island beach bay valley city
    county state republic kingdom north south east west new old great saint san santa fort port mount
    herr frau monsieur mme mlle mr mrs ms dr prof""".split()
)
# words that end a pair: "Victoria Station", "Albert Street", "Santos GmbH"
_NOT_A_SURNAME = frozenset(
    """street st road rd avenue ave lane drive way place court boulevard square terrace close crescent gardens plaza
    hospital clinic university college school institute center centre foundation hotel airport station museum
    library cathedral stadium bridge tower building palace castle river lake mountain island beach bay valley city
    county state republic kingdom inc ltd llc gmbh ag sa sarl corp co company bank group team support service
    services sales monday tuesday wednesday thursday friday saturday sunday january february march april june july
    august september october november december""".split()
)
# first names that are also everyday words or places: such a name and a last name that is one too
# ("Will Power" is no person, "Chase Bank" neither) need context
_WORDLIKE = frozenset(
    """amber amor angel april archer asia august aurora austin autumn beat bill brandy brooklyn can carolina carter
    chad chase chelsea cheyenne cooper crystal daisy dakota dale dawn del destiny don drew else faith floor florence
    frank georgia glen grace grant gun guy hardy harmony hazel holly hope hunter india iris israel ivy jack jade job
    jordan joy june kingston li lily lincoln line lo lorraine lot love madison mar marine mark mason max may melody
    mercedes milton my olive om orlando paris parker pastor paz penny per phoenix preston ray rose rowan ruby
    savannah siena sierra sol sue summer sydney taylor trinity una uno van victoria violet virginia willow wolf
    baker ball banks baron bauer bell berg best birch bird bishop black blanc blanche bond braun brown buck bud case
    cherry church clay cook cross day deacon duke engel field fisher fox frost fuchs gay glass good graf green hall
    hampton heath hill horn house houston hunt jung kaiser key king klein koch könig lane lange law leone lima little
    long miles moon noble north oak page park petit porter post power price prince read reed rice rich richter roux
    savage schwarz sharp short small snow sommer stone storm strong swift turner valencia vogel wade walker wall west
    white winter wise wood young""".split()
)
# first names that open no pair without context: English words that start sentences
_NEVER_FIRST = frozenset("can my else job line lot floor gun beat van del lo om una uno per".split())


@lru_cache(maxsize=1)
def _name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """The first and last names of runtime/names.txt (lower case), read once."""
    first: set[str] = set()
    last: set[str] = set()
    into = first
    text = resources.files(__package__ or "vox.runtime").joinpath("names.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line == "[first]":
            into = first
        elif line == "[last]":
            into = last
        else:
            into.add(line)
    if not first or not last:
        raise ScrubError("runtime/names.txt has no names; the NAME detector cannot run")
    return frozenset(first), frozenset(last)


def _key(word: str) -> str:
    """How a name is looked up: lower case, a straight apostrophe, without an initial ("H.-Dieter",
    "Hans-J.")."""
    if word[1:3] == ".-":
        word = word[3:]
    if word[-3:-2] == "-" and word.endswith("."):
        word = word[:-3]
    return word.casefold().replace("’", "'")


def _is_last(word: str, last: frozenset[str], first: frozenset[str]) -> bool:
    key = _key(word)
    if key in last:
        return True
    parts = key.split("-")  # Smith-Jones, Müller-Lüdenscheidt: one part a known last name will do
    return len(parts) > 1 and any(p in last for p in parts)


_GAP = re.compile(rf"[ \t]+(?:(?:{_INITIAL}|[{_UP}](?=\s))[ \t]+)*(?:(?P<particle>{_PARTICLE})[ \t]+(?=[{_UP}]))?")
_CUE_WORD = re.compile(rf"(?:{_INITIAL}|{_NAME_WORD}|{_NAME_CAPS})(?![\w@-])")
_CUE_WORD_ANY_CASE = re.compile(rf"(?:{_INITIAL}|{_NAME_WORD}|{_NAME_CAPS}|[^\W\d_]{{2,}})(?![\w@-])")
_CUE_GAP = re.compile(rf"[ \t]+(?:{_PARTICLE}[ \t]+)?")
_STREET_BEFORE = re.compile(r"\d{1,5}[A-Za-z]?\s(?:[A-Z][\w.]*\s){1,4}$")


def _names(text: str) -> Iterator[tuple[int, int]]:
    first, last = _name_lists()
    for m in _HONORIFIC.finditer(text):  # "Mr Smith", "Dr. A. B. Jones", "Frau Müller"
        if m.group(0).startswith(("Dr", "DR")) and _STREET_BEFORE.search(text, max(0, m.start() - 48), m.start()):
            continue  # "12 Elm Dr": the street word
        span = _name_after(text, m.end(), first, last, strong=m.group("short") is not None, caps=True)
        if span:
            yield span
    for m in _WORD_START.finditer(text):  # "Dear Jane", "Kind regards,\nJane Doe", "Name: Jane Doe"
        cue = _cue_before(text, m.start())
        if cue is not None:
            span = _name_after(text, m.start(), first, last, strong=cue.group("strong") is not None)
            if span:
                yield span
    for m in _LOWER_NAME_CUE.finditer(text):  # "name: jane doe"
        if text[m.end()].islower():
            span = _name_after(text, m.end(), first, last, strong=True, any_case=True)
            if span:
                yield span
    for m in _NAME_TOKEN.finditer(text):  # a known first name, perhaps a middle one, and a known last name
        key = _key(m.group(0))
        if key in first and key not in _NEVER_FIRST:
            end = _pair_end(text, m.end(), key, first, last)
            if end:
                yield m.start(), end


def _opens_name(text: str, m: re.Match, key: str, first: frozenset[str], last: frozenset[str]) -> bool:
    """Whether the first name ``key``, which is also a month or a role word, starts a name here:
    "by June Brown" does, "by May 2024" does not."""
    if key not in first:
        return False
    gap = _CUE_GAP.match(text, m.end())
    after = _CUE_WORD.match(text, gap.end()) if gap else None
    return after is not None and _key(after.group(0)) not in _NOT_A_NAME and _is_last(after.group(0), last, first)


def _cue_before(text: str, i: int) -> re.Match | None:
    """The name cue that ends just before position ``i`` (spaces and one line break between), if any."""
    j = i
    while j > 0 and text[j - 1] in " \t\r\n":
        j -= 1
    if j == i or j == 0:
        return None
    if text[j - 1] not in ":,":
        k = j
        while k > 0 and (text[k - 1].isalpha() or text[k - 1] in "'/"):
            k -= 1
        if text[k:j].lower() not in _CUE_LAST_WORDS:
            return None
    return _NAME_CUE_BEFORE.search(text, max(0, i - 64), i)


def _pair_end(text: str, pos: int, first_key: str, first: frozenset[str], last: frozenset[str]) -> int | None:
    """Where the name that starts with the first name ending at ``pos`` ends, or None."""
    end = None
    middle = False
    while True:
        gap = _GAP.match(text, pos)
        m = _NAME_TOKEN.match(text, gap.end()) if gap else None
        if m is None:
            return end
        word = m.group(0)
        key = _key(word)
        if key in _NOT_A_SURNAME:
            return end
        if _is_last(word, last, first):
            if end is None and first_key in _WORDLIKE and key in _WORDLIKE:
                return None  # "Will Power", "Chase Bank", "May Day"
        elif gap.group("particle") and first_key not in _WORDLIKE:
            pass  # "Ludwig van Beethoven", "Charles de Gaulle": after a particle, any capitalised word
        elif end is None and not middle and key in first:
            middle = True  # "Anna Maria Schmidt"
            pos = m.end()
            continue
        else:
            return end
        end = pos = m.end()


def _name_after(text: str, pos: int, first: frozenset[str], last: frozenset[str], *, strong: bool,
                caps: bool = False, any_case: bool = False) -> tuple[int, int] | None:
    """The name that a cue ending at ``pos`` introduces: up to four words, initials and particles.

    A weak cue needs a known first or last name among them; words in all capitals need one too,
    unless ``caps`` (after "MR"); lower-case words count only when ``any_case`` ("name: jane doe")
    and known. A run that stops at a role word is no name: "Dear Acme Support".
    """
    pattern = _CUE_WORD_ANY_CASE if any_case else _CUE_WORD
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    start = end = None
    known = False
    for _ in range(4):
        m = pattern.match(text, pos)
        if m is None:
            break
        word = m.group(0)
        key = _key(word.rstrip("."))
        opens = key in _NOT_A_NAME and start is None and _opens_name(text, m, key, first, last)  # "by June Brown"
        if key in _NOT_A_NAME and not word.endswith(".") and not opens:
            if end is not None and not known:
                return None
            break
        if word.islower() and key not in first and key not in last:
            break
        if start is None:
            start = m.start()
        if not word.endswith("."):
            is_known = key in first or _is_last(word, last, first)
            if word.isupper() and not (is_known or caps or known):
                break  # "Dear ACME": capitals need a known name
            end, known = m.end(), known or is_known
        gap = _CUE_GAP.match(text, m.end())
        if gap is None:
            break
        pos = gap.end()
    if start is None or end is None or not (strong or known):
        return None
    return start, end

DETECTORS: tuple[tuple[str, Callable[[str], Iterator[tuple[int, int]]]], ...] = (
    ("SECRET", _secrets),  # first: a key is one token, whatever digits or letters it contains
    ("EMAIL", _emails),
    ("IBAN", _ibans),
    ("NIR", _nirs),  # before CARD: mod-97 is a stronger check than Luhn, and both take 15 digits
    ("CARD", _cards),
    ("IP", _ips),
    ("SSN", _ssns),
    ("NINO", _ninos),
    ("DOB", _dobs),  # before PHONE and ADDRESS: the date, not a number inside it
    ("ADDRESS", _addresses),  # before PHONE: a dropped address would leave the street in the text
    ("PHONE", _phones),
    ("NAME", _names),
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
