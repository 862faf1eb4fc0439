"""The language reference in spec/ stays in step with the grammar and the diagnostic registry.

* every code in the registry has a `### CODE: title` section in spec/diagnostics.md with the
  registry's exact title, every such section names a registered code, and the first `vox`
  example of each section really produces that code (for pre-flight codes, `V6xxx`: checks clean,
  then produces it under pre-flight in an empty environment);
* every keyword and every rule or token name of lang/grammar/vox.lark appears in spec/grammar.md;
* every relative link in spec/ and README.md points at a file (and heading) that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vox.compiler.api import check_source
from vox.compiler.diagnostics.codes import CODES
from vox.compiler.preflight import preflight

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec"
GRAMMAR = ROOT / "lang" / "grammar" / "vox.lark"
DIAGNOSTICS = SPEC / "diagnostics.md"

_HEADING = re.compile(r"^### (\S+): (.+?)\s*$", re.M)
_ANY_HEADING = re.compile(r"^#{1,3} ", re.M)
_FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.M | re.S)
_VOX_BLOCK = re.compile(r"^```vox[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


# ---- spec/diagnostics.md -------------------------------------------------------------------------


def diagnostic_sections() -> dict[str, tuple[str, str]]:
    """`{code: (title, body)}` for every `### CODE: title` heading; body runs to the next heading."""
    text = DIAGNOSTICS.read_text(encoding="utf-8")
    headings = [(m.start(), m.end()) for m in _ANY_HEADING.finditer(_blank_fences(text))]
    sections: dict[str, tuple[str, str]] = {}
    for m in _HEADING.finditer(_blank_fences(text)):
        end = next((start for start, _ in headings if start > m.start()), len(text))
        code, title = m.group(1), m.group(2)
        assert code not in sections, f"spec/diagnostics.md has two sections for {code}"
        sections[code] = (title, text[m.end() : end])
    return sections


def _blank_fences(text: str) -> str:
    """``text`` with fenced code blocks replaced by spaces (positions kept), so `#` lines in code
    are not taken for headings."""
    return _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def test_every_code_has_a_section_with_its_exact_title():
    sections = diagnostic_sections()
    missing = [code for code in CODES if code not in sections]
    assert not missing, f"spec/diagnostics.md has no `### CODE: title` section for {missing}"
    wrong = {code: (sections[code][0], title) for code, title in CODES.items() if sections[code][0] != title}
    assert not wrong, f"section titles differ from compiler/diagnostics/codes.py (spec, registry): {wrong}"


def test_every_section_names_a_registered_code():
    unknown = [code for code in diagnostic_sections() if code not in CODES]
    assert not unknown, f"spec/diagnostics.md documents codes that are not in CODES: {unknown}"


@pytest.mark.parametrize("code", sorted(CODES))
def test_the_first_example_of_each_section_produces_its_code(code):
    sections = diagnostic_sections()
    if code not in sections:
        pytest.fail(f"spec/diagnostics.md has no section for {code}")
    example = _VOX_BLOCK.search(sections[code][1])
    assert example is not None, f"the section for {code} has no ```vox example"
    source = example.group(1)
    result = check_source(f"{code}.vox", source)
    found = sorted({d.code for d in result.diagnostics})
    if code.startswith("V6"):
        # Pre-flight codes: the example checks clean, and pre-flight in an empty environment finds the code.
        assert result.ok, f"the example for {code} does not check clean: {found}:\n{source}"
        if code in ("V6005", "V6006") and not result.analysis.budgets.bounds:
            pytest.skip("the reservation check needs the flow bounds of the budget analysis")
        found = sorted({d.code for d in preflight(result.program, result.analysis, {})})
    assert code in found, f"the example for {code} produces {found or 'no diagnostics'}:\n{source}"


# ---- spec/grammar.md -----------------------------------------------------------------------------


def _grammar_lines() -> list[str]:
    return [line for line in GRAMMAR.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("//")]


_TERMINAL_DEF = re.compile(r"^[A-Z_][A-Z0-9_]*(?:\.\d+)?\s*:")
_DEFINITION = re.compile(r"^[?!]?([A-Za-z][A-Za-z0-9_]*)(?:\.\d+)?\s*:")
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def grammar_keywords() -> set[str]:
    """The quoted words of the grammar's rules (`"agent"`, `"let"`, `"per"`, ...).

    Terminal definitions are skipped: their regular expressions contain quote characters that
    are not keywords.
    """
    words: set[str] = set()
    for line in _grammar_lines():
        if _TERMINAL_DEF.match(line) or line.startswith("%"):
            continue
        words.update(w for w in _QUOTED.findall(line) if re.fullmatch(r"[A-Za-z_]+", w))
    return words


def grammar_definitions() -> set[str]:
    """Names of the rules and tokens defined at column 0, without the inlining prefix `?`;
    names starting with `_` are the grammar's private helpers and are left out."""
    return {m.group(1) for line in _grammar_lines() if (m := _DEFINITION.match(line))}


def test_the_grammar_extraction_finds_what_it_should():
    # guards the two tests below against passing because a regex found nothing
    assert {"agent", "let", "per", "check", "mock", "true"} <= grammar_keywords()
    assert {"start", "chunk", "agent_decl", "expr", "for_expr", "atom", "NAME", "OPTIONAL"} <= grammar_definitions()
    assert not any(name.startswith("_") for name in grammar_definitions())


def test_every_grammar_keyword_is_in_grammar_md():
    text = (SPEC / "grammar.md").read_text(encoding="utf-8")
    missing = sorted(w for w in grammar_keywords() if f'"{w}"' not in text)
    assert not missing, f'spec/grammar.md never mentions these keywords of vox.lark (as "word"): {missing}'


def test_every_grammar_rule_is_in_grammar_md():
    text = (SPEC / "grammar.md").read_text(encoding="utf-8")
    missing = sorted(
        name for name in grammar_definitions() if not re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", text)
    )
    assert not missing, f"spec/grammar.md never mentions these rules or tokens of vox.lark: {missing}"


# ---- links -----------------------------------------------------------------------------------


_LINK = re.compile(r"\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"(`+).*?\1", re.S)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading.

    >>> heading_anchor("V0011: `=` instead of `:` in a member")
    'v0011--instead-of--in-a-member'
    """
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    return {heading_anchor(h) for h in _MD_HEADING.findall(_blank_fences(path.read_text(encoding="utf-8")))}


def _documents() -> list[Path]:
    return sorted(SPEC.glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document):
    if not document.exists():
        pytest.fail(f"{document.relative_to(ROOT)} is missing")
    text = _INLINE_CODE.sub("", _FENCE.sub("", document.read_text(encoding="utf-8")))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors_of(path):
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} has broken links: {broken}"
