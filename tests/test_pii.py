"""The PII scrubber behind redact() (vox.runtime.pii)."""

from __future__ import annotations

import doctest
import importlib
import os
import pathlib
import re

import faker
import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from vox.runtime import pii
from vox.runtime.pii import Finding, ScrubError, iban_ok, luhn_ok, nir_ok, scrub, scrub_value


def kinds(text: str) -> list[str]:
    return [f.kind for f in scrub(text).findings]


def test_doctests():
    assert doctest.testmod(pii).failed == 0


@pytest.mark.parametrize(
    "kind, value",
    [
        ("EMAIL", "jo@example.com"),
        ("EMAIL", "first.last+tag@mail.sub.example.co.uk"),
        ("EMAIL", "józef@przykład.pl"),
        ("PHONE", "(555) 123-4567"),
        ("PHONE", "(591)341-7776"),
        ("PHONE", "555-234-5678"),
        ("PHONE", "206.269.0743x9150"),
        ("PHONE", "+1-780-563-6083x7783"),
        ("PHONE", "001-537-640-6812"),
        ("PHONE", "1-555-234-5678"),
        ("PHONE", "+44 20 7946 0123"),
        ("PHONE", "+44(0)115 4960914"),
        ("PHONE", "(0161) 4960066"),
        ("PHONE", "07700 900123"),
        ("PHONE", "+49 (0) 9141 777631"),
        ("PHONE", "03662 585178"),
        ("PHONE", "+33 1 83 41 77 76"),
        ("PHONE", "+33 (0)1 41 63 60 83"),
        ("PHONE", "04 15 39 15 00"),
        ("PHONE", "01.23.45.67.89"),
        ("CARD", "4111 1111 1111 1111"),
        ("CARD", "4111-1111-1111-1111"),
        ("CARD", "4111111111111111"),
        ("CARD", "3782 822463 10005"),
        ("CARD", "4222222222222"),
        ("IBAN", "GB82 WEST 1234 5698 7654 32"),
        ("IBAN", "DE89370400440532013000"),
        ("IBAN", "FR1420041010050500013M02606"),
        ("IBAN", "NL91ABNA0417164300"),
        ("IP", "192.168.1.254"),
        ("IP", "8.8.8.8"),
        ("IP", "2001:db8::1"),
        ("IP", "3f71:9726:fd70:bdda:cb4d:eeed:b0c:995e"),
        ("IP", "::ffff:192.0.2.1"),
        ("SSN", "123-45-6789"),
        ("SSN", "078 05 1120"),
        ("NINO", "AB 12 34 56 C"),
        ("NINO", "JG103759A"),
        ("NIR", "1 85 02 2B 033 777 63"),
        ("NIR", "185022B03377763"),
    ],
)
def test_positives(kind, value):
    text = f"Note: {value} (see above)."
    s = scrub(text)
    assert [f.kind for f in s.findings] == [kind], (value, s)
    f = s.findings[0]
    assert text[f.start : f.end] == value
    assert s.text == f"Note: {pii.PLACEHOLDERS[kind]} (see above)."


@pytest.mark.parametrize(
    "text",
    [
        "Order 2024-03-15 arrives 15.03.2024, or 03/15/2024 14:30, or 01.02.2024 10:30.",
        "It costs $1,234.56 or 1.234,56 € or £12.99 or 1 234 567,89 € or EUR 12 345.",
        "Upgrade from v3.11.7 to 3.12.0; build 10.0.19041; ISBN 978-3-16-148410-0.",
        "Order ORD-2024-000123, INV-000123456, #48213-2291, order 5913417776 shipped.",
        "We have 12 items, 250 ml, 3 x 500 ml, 12.5% off, zip 90210, at 12:30:45.",
        "UUID 123e4567-e89b-12d3-a456-426614174000, sha 3f2a9c0d1e, std::vector, dead::beef.",
        "Coordinates 48.8566, 2.3522; population 12,345,678; 1Z999AA10123456784.",
        "Numbers 123 456 789 and 4111 1111 1111 1112 (bad Luhn) and 999.1.1.1.",
        "Invalid SSNs 000-12-3456, 666-12-3456, 923-45-6789, 123-00-4567, 123-45-0000.",
        "Not NINOs: QQ123456C, ZZ123456A, GB123456A, AB123456E; not an email: a@b, @home.",
        "IBAN-like but wrong: GB82WEST12345698765433, DE8937040044053201300.",
        "Version 1.2.3.4 of the app",  # four parts: an IPv4 shape... stays an IP (documented)
    ][:-1],
)
def test_hard_negatives(text):
    assert scrub(text).findings == (), scrub(text)


def test_checksums_reject_near_misses():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111121")
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("GB82WEST12345698765423")  # two digits swapped
    assert not iban_ok("GB82WEST1234569876543")  # one short for GB
    assert not iban_ok("XX82WEST12345698765432")  # unknown country
    assert nir_ok("185022B03377763") and not nir_ok("185022B03377764")
    assert kinds("card 4111 1111 1111 1121") == []
    assert kinds("iban GB82 WEST 1234 5698 7654 23") == []


def test_bare_ten_digits_need_a_phone_word():
    assert kinds("Order 5913417776 shipped") == []
    assert kinds("Call me on 5913417776 please") == ["PHONE"]
    assert kinds("Order 5913417776 shipped; ssn 123456789") == ["SSN"]


def test_phone_is_found_inside_a_longer_run():
    s = scrub("Call 555-234-5678 2024 and qty 3 (555) 234-5678")
    assert s.text == "Call [PHONE] 2024 and qty 3 [PHONE]"


def test_overlaps_resolve_by_priority_and_offsets_are_in_the_original():
    text = "mail 4111111111111111@example.com from 10.0.0.1"
    s = scrub(text)
    assert [f.kind for f in s.findings] == ["EMAIL", "IP"]
    assert s.text == "mail [EMAIL] from [IP]"
    assert all(isinstance(f, Finding) and f.end <= len(text) for f in s.findings)


def test_scrub_value_recurses_and_fails_closed():
    value = {
        "to": "jo@example.com",
        "n": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "card_as_number": 4111111111111111,
        "lines": ["call +44 20 7946 0123", ("ip", "10.1.2.3")],
        "jo@example.com": "key with an email",
    }
    out = scrub_value(value)
    assert out == {
        "to": "[EMAIL]",
        "n": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "card_as_number": "[CARD]",
        "lines": ["call [PHONE]", ("ip", "[IP]")],
        "[EMAIL]": "key with an email",
    }
    with pytest.raises(ScrubError):
        scrub_value({"x": object()})
    with pytest.raises(ScrubError):
        scrub_value(b"bytes")
    with pytest.raises(ScrubError):
        scrub_value({"a@x.com": 1, "b@y.com": 2})  # both keys would become [EMAIL]
    with pytest.raises(ScrubError):
        scrub(None)  # type: ignore[arg-type]


def test_a_detector_bug_stops_the_call(monkeypatch):
    def broken(text):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(pii, "DETECTORS", pii.DETECTORS + (("X", broken),))
    with pytest.raises(ScrubError, match="PII scrubber failed"):
        scrub("hello")


_fakers = {loc: Faker(loc) for loc in ("en_US", "en_GB", "de_DE", "fr_FR")}


def _entity(kind: str, fk: Faker, loc: str) -> str:
    if kind == "EMAIL":
        return fk.email()
    if kind == "PHONE":
        for _ in range(50):
            p = fk.phone_number()
            if loc == "en_US" and p[:1].isdigit() and p.replace("-", "").replace(".", "").isdigit() and len(p) == 10:
                continue  # ten bare digits need a phone word (see test_bare_ten_digits_need_a_phone_word)
            if loc == "de_DE" and p.lstrip("(").startswith("00"):
                continue  # faker draws German area codes starting 00, which do not exist
            return p
        return "+44 20 7946 0123"
    if kind == "CARD":
        return fk.credit_card_number(card_type=fk.random_element(["visa16", "visa13", "mastercard", "amex", "discover", "jcb16"]))
    if kind == "IBAN":
        return fk.iban()
    if kind == "IP":
        return fk.ipv4() if fk.boolean() else fk.ipv6()
    if kind == "SSN":
        return _fakers["en_US"].ssn()
    raise AssertionError(kind)


@settings(max_examples=150)
@given(
    seed=st.integers(0, 2**31),
    picks=st.lists(
        st.tuples(st.sampled_from(["EMAIL", "PHONE", "CARD", "IBAN", "IP", "SSN"]), st.sampled_from(list(_fakers))),
        min_size=1,
        max_size=5,
    ),
)
def test_every_inserted_entity_is_removed(seed, picks):
    parts, values = [], []
    for i, (kind, loc) in enumerate(picks):
        fk = _fakers[loc]
        fk.seed_instance(seed + i)
        value = _entity(kind, fk, loc)
        values.append(value)
        parts.append(f"{fk.sentence()} {value} {fk.sentence()}")
    text = " ".join(parts)
    out = scrub(text).text
    for value in values:
        assert value not in out, (value, out)


# ---- names, addresses, dates of birth, secrets ----------------------------------------------------


@pytest.mark.parametrize(
    "kind, text, found",
    [
        # names: honorifics, cues, and known first + last name pairs
        ("NAME", "Please call Mr Okafor back.", "Okafor"),
        ("NAME", "Dr. A. B. Jones signed off.", "A. B. Jones"),
        ("NAME", "Frau Müller-Lüdenscheidt ruft an.", "Müller-Lüdenscheidt"),
        ("NAME", "Hello, my name is Priya Raghunathan and I need help.", "Priya Raghunathan"),
        ("NAME", "Name: Zbigniew Kowalczyk", "Zbigniew Kowalczyk"),
        ("NAME", "name: jane doe", "jane doe"),
        ("NAME", "Dear Jane,", "Jane"),
        ("NAME", "Kind regards,\nSiobhan Whitlock", "Siobhan Whitlock"),
        ("NAME", "Signed: Kwame Mensah", "Kwame Mensah"),
        ("NAME", "Hi Sarah, the box is damaged.", "Sarah"),
        ("NAME", "The parcel was signed for by Jennifer Lawrence.", "Jennifer Lawrence"),
        ("NAME", "Forward it to John F. Kennedy please.", "John F. Kennedy"),
        ("NAME", "Ludwig van Beethoven wrote nine.", "Ludwig van Beethoven"),
        ("NAME", "Ask Anna Maria Schmidt about it.", "Anna Maria Schmidt"),
        ("NAME", "Emily O'Sullivan's order is late.", "Emily O'Sullivan"),
        ("NAME", "MR JOHN SMITH, ACCOUNT 4", "JOHN SMITH"),
        ("NAME", "Je m'appelle Amélie Poulain.", "Amélie Poulain"),
        # street addresses
        ("ADDRESS", "Ship it to 221B Baker Street, London NW1 6XE today.", "221B Baker Street, London NW1 6XE"),
        ("ADDRESS", "I live at 1600 Pennsylvania Ave NW, Washington, DC 20500.", "1600 Pennsylvania Ave NW, Washington, DC 20500"),
        ("ADDRESS", "Send to 42 N Main St Apt 4B, Springfield, IL 62704 asap", "42 N Main St Apt 4B, Springfield, IL 62704"),
        ("ADDRESS", "Flat 3, 12 High Street is empty.", "Flat 3, 12 High Street"),
        ("ADDRESS", "Meine Adresse: Hauptstraße 5, 10115 Berlin.", "Hauptstraße 5, 10115 Berlin"),
        ("ADDRESS", "Wir wohnen in der Karl-Marx-Allee 12a.", "Karl-Marx-Allee 12a"),
        ("ADDRESS", "Neue Adresse: Berliner Straße 17/2", "Berliner Straße 17/2"),
        ("ADDRESS", "Livrez au 12, rue de la Paix, 75002 Paris svp.", "12, rue de la Paix, 75002 Paris"),
        ("ADDRESS", "au 5 avenue des Champs-Élysées", "5 avenue des Champs-Élysées"),
        # dates of birth
        ("DOB", "DOB: 03/15/1984, member since 2019", "03/15/1984"),
        ("DOB", "She was born on 3 March 1984 in Leeds.", "3 March 1984"),
        ("DOB", "Date of birth (dd.mm.yyyy): 15.03.1984", "15.03.1984"),
        ("DOB", "born in 1984", "1984"),
        ("DOB", "geboren am 15. März 1984", "15. März 1984"),
        ("DOB", "Birthday: March 15th, 1984", "March 15th, 1984"),
        ("DOB", "née le 2 août 1990", "2 août 1990"),
        # secrets
        ("SECRET", "my key is sk-proj-4fT9xQ2mLk8Vb7Nc1Zr5Wd3Yh6Pa0Ue", "sk-proj-4fT9xQ2mLk8Vb7Nc1Zr5Wd3Yh6Pa0Ue"),
        ("SECRET", "ANTHROPIC_API_KEY=sk-ant-api03-Xy7Kq2Lm9Np4Rs6Tv8Wz0Ab1Cd3Ef5Gh", "sk-ant-api03-Xy7Kq2Lm9Np4Rs6Tv8Wz0Ab1Cd3Ef5Gh"),
        ("SECRET", "token ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
        ("SECRET", "aws AKIAIOSFODNN7EXAMPLE in the log", "AKIAIOSFODNN7EXAMPLE"),
        ("SECRET", "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp"),
        ("SECRET", "api_key: 'Zq8Ld2Rk5Vn1Xt7Bw3Hm9'", "Zq8Ld2Rk5Vn1Xt7Bw3Hm9"),
        ("SECRET", "Authorization: Bearer 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ("SECRET", "the password is hunter22, do not share", "hunter22"),
    ],
)
def test_new_kinds_find_what_they_should(kind, text, found):
    s = scrub(text)
    assert [(f.kind, text[f.start : f.end]) for f in s.findings] == [(kind, found)], s
    assert pii.PLACEHOLDERS[kind] in s.text and found not in s.text


@pytest.mark.parametrize(
    "text",
    [
        # names: everyday words that are also names, role words after a cue, brands, places
        "Will Power and Grace Period apply; May Day is a holiday; Chase Bank closed.",
        "Victoria Station, Victoria Park and Sierra Leone are places, Amber Alert a warning.",
        "Dear Customer, Dear Sir or Madam, Hi Team, Hello World, Dear Acme Support,",
        "Kind regards,\nThe Support Team",
        "Thanks, Support. I am Happy with MS Windows and Mark Complete.",
        "Jane called yesterday; ask for Sarah.",  # a lone first name without context
        "Order Status: Shipped. Delivery Date: Monday. Customer Service is open.",
        # addresses: numbers before capitalised words that are not streets
        "Buy 2 TB Hard Drive units; 5 Supreme Court justices; Chapter 5 The Way Forward.",
        "We need 3 Main Points and 10 Key Steps; Spring 2024 and String 3 and Monitoring 24.",
        "Ich habe den Arbeitsplatz 3 und den Sitzplatz 12 reserviert; der Verkäufer 2 kam.",
        "Walk 3 blocks down the road, then 2 miles along the avenue.",
        # dates: a date without a birth word, a number between
        "Order placed 03/15/1984 and shipped; born to run, 2 days later.",
        "The newborn, 3 weeks old, and the reborn 2020 model.",
        "Born: see attached; the form from 12/05/2024 lists it.",
        # secrets: words and ids after "key", "token", "password"
        "key: order_2024_summary_v2 and the key point is 42; token limit 128000.",
        "password is incorrect; password reset link sent; password = fallback_getpass",
        "UUID 123e4567-e89b-12d3-a456-426614174000 and sk-learn-style-words-joined-by-dashes",
        "Use keyboard shortcut; token count: 4096; the secret sauce recipe.",
    ],
)
def test_new_kinds_leave_near_misses_alone(text):
    s = scrub(text)
    assert s.findings == (), [(f.kind, text[f.start : f.end]) for f in s.findings]


def test_every_detector_kind_has_a_placeholder_and_a_label():
    from vox.compiler.redaction import DETECTORS_OF_LABEL, KIND_WORDS

    kinds = [kind for kind, _ in pii.DETECTORS]
    assert len(kinds) == len(set(kinds)) and set(kinds) == set(pii.PLACEHOLDERS)
    covered = [kind for kinds_ in DETECTORS_OF_LABEL.values() for kind in kinds_]
    assert sorted(covered) == sorted(kinds), "each detector covers exactly one label in compiler/redaction.py"
    assert set(KIND_WORDS) == set(kinds)
    # the docstring's table lists every kind with its placeholder, in priority order
    table = re.findall(r"^([A-Z]+) +``(\[[A-Z]+\])``", pii.__doc__, re.M)
    assert table == [(kind, pii.PLACEHOLDERS[kind]) for kind in kinds]


def test_the_names_list_ships_with_the_package():
    first, last = pii._name_lists()
    assert {"jane", "priya", "zbigniew", "siobhan"} <= first and {"smith", "kowalczyk", "o'sullivan"} <= last
    assert all(n == n.casefold() for n in first | last)


NAME_LOCALES = ("en_US", "en_GB", "en_IE", "en_NZ", "en_IN", "de_DE", "de_AT", "de_CH", "fr_FR", "fr_CA",
                "es_ES", "es_MX", "it_IT", "nl_NL", "pt_PT", "pt_BR", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI")
_NAME_LIST = re.compile(r"^(?:(?:male|female|unisex|nonbinary)_)?(first|last)_names(?:_(?:male|female|nonbinary))?$")
_NAME_SHAPE = re.compile(r"^(?=.{2})[^\W\d_]+(?:['’-][^\W\d_]+)*$")
NAMES_FILE = pathlib.Path(pii.__file__).with_name("names.txt")


def names_file_text() -> str:
    """runtime/names.txt as faker's per-locale name lists give it (faker is a test dependency only)."""
    found: dict[str, set[str]] = {"first": set(), "last": set()}
    for loc in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in dir(provider):
            m = _NAME_LIST.match(attr)
            if m:
                found[m.group(1)].update(n.casefold().replace("’", "'") for n in getattr(provider, attr)
                                         if _NAME_SHAPE.match(n))
    lines = ["# Person names for the NAME detector of runtime/pii.py: lower case, one a line, sorted.",
             f"# Made from faker {faker.VERSION} ({', '.join(NAME_LOCALES)}) by tests/test_pii.py;",
             "# regenerate with VOX_UPDATE_NAMES=1 python -m pytest tests/test_pii.py -k names_file"]
    for kind in ("first", "last"):
        lines.append(f"[{kind}]")
        lines.extend(sorted(found[kind]))
    return "\n".join(lines) + "\n"


def test_the_names_file_is_what_faker_gives():
    if os.environ.get("VOX_UPDATE_NAMES"):
        NAMES_FILE.write_text(names_file_text(), encoding="utf-8")
    made_from = NAMES_FILE.read_text(encoding="utf-8").splitlines()[1]
    if f"faker {faker.VERSION} " not in made_from:
        pytest.skip(f"names.txt was made with another faker ({made_from}); this one is {faker.VERSION}")
    assert NAMES_FILE.read_text(encoding="utf-8") == names_file_text()


def _cue(fk: Faker, name: str) -> str:
    return fk.random_element([f"Dear {name},", f"My name is {name}.", f"Kind regards,\n{name}", f"Name: {name}",
                              f"Please ask Mr {name} to call.", f"The form was filled in by {name} today."])


@settings(max_examples=150)
@given(seed=st.integers(0, 2**31), loc=st.sampled_from(list(_fakers)), n=st.integers(1, 4))
def test_names_addresses_and_birth_dates_are_removed(seed, loc, n):
    fk = _fakers[loc]
    fk.seed_instance(seed)
    parts, values = [], []
    for _ in range(n):
        kind = fk.random_element(["NAME", "ADDRESS", "DOB"])
        if kind == "NAME":
            value = f"{fk.first_name()} {fk.last_name()}"
            parts.append(_cue(fk, value))
        elif kind == "ADDRESS":
            value = _address(fk, loc)
            parts.append(f"Deliver to {value} please.")
        else:
            value = fk.date_of_birth().strftime(fk.random_element(["%d/%m/%Y", "%Y-%m-%d", "%d %B %Y", "%B %d, %Y"]))
            parts.append(f"DOB: {value}.")
        values.append(value)
    text = " ".join(parts)
    out = scrub(text).text
    for value in values:
        assert value not in out, (value, out)


def _address(fk: Faker, loc: str) -> str:
    number = fk.building_number()
    if loc == "de_DE":  # faker's streets: "Bohnbachplatz", "Melitta-Steinberg-Gasse", "Heringring"
        street = fk.street_name()
        while " " in street:  # a few of faker's German last names have a space ("Dussen van")
            street = fk.street_name()
        return f"{street} {number}, {fk.postcode()} {fk.city()}"
    if loc == "fr_FR":  # "48, rue Gimenez", "790, boulevard de Dumont"
        return f"{number}, {fk.street_name()}"
    suffix = fk.random_element(["Street", "Road", "Avenue", "Lane", "Drive", "Way", "Place", "Court", "Boulevard", "St", "Rd"])
    street = f"{number} {fk.last_name()} {suffix}"
    if loc == "en_US" and fk.boolean():
        return f"{street}, {fk.city()}, {fk.state_abbr()} {fk.zipcode()}"
    if loc == "en_GB" and fk.boolean():
        return f"{street}, {fk.city()} {fk.postcode()}"
    return street


_prices = st.builds(lambda a, b: f"${a:,}.{b:02d}", st.integers(0, 10**6), st.integers(0, 99))
_versions = st.builds(lambda *v: ".".join(map(str, v)), st.integers(0, 30), st.integers(0, 30), st.integers(0, 99))
_orders = st.builds(lambda p, n: f"{p}-{n}", st.sampled_from(["ORD", "INV", "TKT", "RMA"]), st.integers(0, 10**9))


@given(parts=st.lists(st.one_of(_prices, _versions, _orders, st.sampled_from(
    ["Order", "Status", "Shipped", "Refund", "Monday", "Invoice", "Total", "Item", "Qty", "Blender", "Model", "Pro"])),
    min_size=1, max_size=12))
def test_orders_prices_and_versions_stay(parts):
    text = " ".join(parts)
    assert scrub(text).findings == ()
