"""End-to-end tests of `voxc lsp`: pytest-lsp starts the real server over stdio and drives it
with a real LSP client. Tests wait for the server's notifications; nothing sleeps."""

from __future__ import annotations

import pathlib
import sys

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = pathlib.Path(__file__).resolve().parent / "lsp"
PUBLISH = lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS


def server_command() -> list[str]:
    """`voxc lsp` once the CLI lists the command, else the same server as `python -m vox.lsp`."""
    from vox.cli.main import COMMANDS

    if any(c.NAME == "lsp" for c in COMMANDS):
        return [sys.executable, "-m", "vox.cli.main", "lsp"]
    return [sys.executable, "-m", "vox.lsp"]


pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command()))
async def client(lsp_client: LanguageClient):
    params = lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=EXAMPLES.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=EXAMPLES.as_uri(), name="examples")],
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


# ---- helpers ----------------------------------------------------------------------------------------


async def published(client: LanguageClient, uri: str, version: int) -> list[lsp.Diagnostic]:
    """Wait for the diagnostics of exactly this version of ``uri``."""
    while True:
        params = await client.wait_for_notification(PUBLISH)
        if params.uri == uri and params.version == version:
            return list(params.diagnostics)


async def open_doc(client: LanguageClient, name: str, text: str) -> tuple[str, list[lsp.Diagnostic]]:
    uri = (EXAMPLES / name).as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        text_document=lsp.TextDocumentItem(uri=uri, language_id="vox", version=1, text=text)))
    return uri, await published(client, uri, 1)


def change(client: LanguageClient, uri: str, version: int, range_: lsp.Range, text: str) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangePartial(range=range_, text=text)]))


def pos(text: str, needle: str, delta: int = 0) -> lsp.Position:
    """The UTF-16 position of ``needle`` (plus ``delta`` characters) in ``text``."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    col = offset - (text.rfind("\n", 0, offset) + 1)
    prefix = text[offset - col:offset]
    return lsp.Position(line=line, character=len(prefix.encode("utf-16-le")) // 2)


def source(range_: lsp.Range, text: str) -> str:
    """The text a range covers (UTF-16 columns), so tests state underlined source, not offsets."""
    lines = text.split("\n")

    def offset(p: lsp.Position) -> int:
        line = lines[p.line].encode("utf-16-le")[: p.character * 2].decode("utf-16-le")
        return sum(len(x) + 1 for x in lines[: p.line]) + len(line)

    return text[offset(range_.start):offset(range_.end)]


def apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.split("\n")

    def offset(p: lsp.Position) -> int:
        if p.line >= len(lines):
            return len(text)
        line = lines[p.line].encode("utf-16-le")[: p.character * 2].decode("utf-16-le")
        return sum(len(x) + 1 for x in lines[: p.line]) + len(line)

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end):]
    return text


HELLO = (EXAMPLES / "hello.vox").read_text(encoding="utf-8")
REFERENCE = (EXAMPLES / "reference.vox").read_text(encoding="utf-8")
LEAK = (FIXTURES / "leak.vox").read_text(encoding="utf-8")


# ---- diagnostics ----------------------------------------------------------------------------------------


async def test_clean_file_publishes_no_diagnostics(client: LanguageClient):
    _, diagnostics = await open_doc(client, "hello.vox", HELLO)
    assert diagnostics == []


async def test_diagnostic_has_code_link_related_information_and_help(client: LanguageClient):
    _, diagnostics = await open_doc(client, "leak.vox", LEAK)
    [d] = diagnostics
    assert d.code == "V3001" and d.source == "voxc"
    assert d.severity == lsp.DiagnosticSeverity.Error
    assert source(d.range, LEAK) == "ticket.body"
    assert d.code_description.href.endswith("diagnostics.md#v3001-label-reaches-an-uncleared-sink") or \
        "#v3001-" in d.code_description.href
    related = {source(r.location.range, LEAK): r.message for r in d.related_information}
    assert "`openai` is cleared for `public` only" in related["[public]"]
    assert "mini" in related
    assert "help:" in d.message


async def test_edit_sequence_introduces_and_fixes_an_error(client: LanguageClient):
    uri, diagnostics = await open_doc(client, "hello.vox", HELLO)
    assert diagnostics == []
    at = pos(HELLO, "model: tiny", len("model: "))
    word = lsp.Range(start=at, end=lsp.Position(line=at.line, character=at.character + 4))
    change(client, uri, 2, word, "tiyn")
    [d] = await published(client, uri, 2)
    assert d.code == "V1001" and "tiyn" in d.message
    assert d.range.start == at
    change(client, uri, 3, word, "tiny")
    assert await published(client, uri, 3) == []


async def test_half_typed_file_still_reports_errors_below_the_syntax_error(client: LanguageClient):
    text = HELLO.replace("  model: tiny\n", "  model: tiny +\n  budget: {", 1).replace(
        "return greeter(name: name)", "return greeter(name: nmae)")
    _, diagnostics = await open_doc(client, "hello.vox", text)
    codes = [d.code for d in diagnostics]
    assert any(c.startswith("V0") for c in codes), codes
    below = [d for d in diagnostics if source(d.range, text) == "nmae"]
    assert below and below[0].code.startswith("V1")


async def test_non_ascii_text_uses_utf16_columns(client: LanguageClient):
    text = HELLO.replace('"""\n    Write a warm', '"""\n    Schreib 👋 ça, für {name}. Write a warm').replace(
        "return greeter(name: name)", 'let x = "✨😀" + nmae\n  return greeter(name: name)')
    _, diagnostics = await open_doc(client, "hello.vox", text)
    [d] = [d for d in diagnostics if d.code.startswith("V1")]
    assert source(d.range, text) == "nmae"
    assert d.range.start == pos(text, "nmae")  # the emoji count as two UTF-16 units each


# ---- hover ------------------------------------------------------------------------------------------------


async def test_hover_shows_agent_bound_with_breakdown(client: LanguageClient):
    uri, _ = await open_doc(client, "reference.vox", REFERENCE)
    hover = await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos(REFERENCE, "agent triager", 7)))
    value = hover.contents.value
    assert "agent triager(ticket_text: str) -> Triage" in value
    assert "worst case per call" in value and "cost ≤ $0.01" in value and "tokens ≤ 6_000" in value
    assert "up to 2 model calls on mini, local" in value


async def test_hover_shows_tool_effect_and_clearance(client: LanguageClient):
    uri, _ = await open_doc(client, "reference.vox", REFERENCE)
    at = pos(REFERENCE, "tools: [lookup_order, issue_refund]", len("tools: [lookup_order, "))
    hover = await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=at))
    value = hover.contents.value
    assert "tool issue_refund(order_id: str, amount: money) -> str" in value
    assert "effect: `write`" in value and "clearance: payment, pii, public" in value
    assert source(hover.range, REFERENCE) == "issue_refund"


async def test_hover_on_field_shows_type_and_labels(client: LanguageClient):
    uri, _ = await open_doc(client, "leak.vox", LEAK)
    hover = await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos(LEAK, "ticket.body", 8)))
    assert "(field) body: str" in hover.contents.value and "`@pii`" in hover.contents.value


# ---- navigation -------------------------------------------------------------------------------------------


async def test_definition_and_references(client: LanguageClient):
    uri, _ = await open_doc(client, "hello.vox", HELLO)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    use = pos(HELLO, "model: tiny", len("model: "))
    [location] = [await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc, position=use))]
    location = location[0] if isinstance(location, list) else location
    assert location.uri == uri and location.range.start == pos(HELLO, "tiny = sim")
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc, position=use, context=lsp.ReferenceContext(include_declaration=True)))
    assert [r.range.start for r in refs] == [pos(HELLO, "tiny = sim"), use]


async def test_document_symbols_outline(client: LanguageClient):
    uri, _ = await open_doc(client, "reference.vox", REFERENCE)
    found = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri)))
    names = [s.name for s in found]
    assert names[:2] == ["pii", "payment"]
    assert {"triager", "resolver", "handle", "Ticket", "lookup_order"} <= set(names)
    ticket = next(s for s in found if s.name == "Ticket")
    assert [c.name for c in ticket.children] == ["id", "body", "customer_email"]


async def test_workspace_symbols_span_files(client: LanguageClient):
    await open_doc(client, "hello.vox", HELLO)
    found = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="tri"))
    files = {pathlib.Path(s.location.uri).name for s in found if s.name == "triager"}
    assert "reference.vox" in files  # not open: read from the workspace folder
    found = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="greeter"))
    assert [pathlib.Path(s.location.uri).name for s in found if s.name == "greeter"] == ["hello.vox"]


# ---- completion ------------------------------------------------------------------------------------------


async def complete(client, uri, text, needle, delta):
    result = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos(text, needle, delta)))
    return {item.label for item in result.items}


async def test_completion_by_context(client: LanguageClient):
    uri, _ = await open_doc(client, "reference.vox", REFERENCE)
    models = await complete(client, uri, REFERENCE, "model: mini", len("model: "))
    assert {"mini", "sonnet", "local"} <= models and "lookup_order" not in models
    tools = await complete(client, uri, REFERENCE, "tools: [lookup_order", len("tools: ["))
    assert {"lookup_order", "issue_refund", "search_kb"} <= tools and "mini" not in tools
    labels = await complete(client, uri, REFERENCE, "body: str @pii", len("body: str @"))
    assert {"pii", "payment", "public"} == labels
    fields = await complete(client, uri, REFERENCE, "{ticket.body}", len("{ticket."))
    assert {"id", "body", "customer_email"} == fields
    placeholders = await complete(client, uri, REFERENCE, "{ticket.body}", 1)
    assert {"ticket", "triage", "hints", "policy"} == placeholders
    gate_fields = await complete(client, uri, REFERENCE, "t.confidence >= 0.7", 2)
    assert {"intent", "order_id", "summary", "confidence"} == gate_fields
    members = await complete(client, uri, REFERENCE, "  model: local", 2)
    assert {"model", "tools", "budget", "prompt", "fallback"} <= members
    top = await complete(client, uri, REFERENCE, "enum Intent", 0)
    assert {"agent", "flow", "tool", "model"} <= top


# ---- editing ---------------------------------------------------------------------------------------------


async def test_rename_updates_declaration_and_uses(client: LanguageClient):
    uri, _ = await open_doc(client, "hello.vox", HELLO)
    edit = await client.text_document_rename_async(lsp.RenameParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos(HELLO, "tiny = sim"), new_name="small"))
    renamed = apply(HELLO, edit.changes[uri])
    assert "model small = sim" in renamed and "model: small" in renamed and "tiny" not in renamed


async def test_formatting_matches_voxc_fmt(client: LanguageClient):
    from vox.compiler.format.formatter import format_source

    messy = HELLO.replace("provider sim = sim { clearance: [public] }", "provider   sim=sim{clearance:[public]}")
    uri, _ = await open_doc(client, "hello.vox", messy)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert apply(messy, edits) == format_source(messy).text


async def test_code_action_applies_the_diagnostic_fix(client: LanguageClient):
    uri, [d] = await open_doc(client, "leak.vox", LEAK)
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=d.range,
        context=lsp.CodeActionContext(diagnostics=[d])))
    [action] = actions
    assert action.kind == lsp.CodeActionKind.QuickFix and "redact" in action.title
    fixed = apply(LEAK, action.edit.changes[uri])
    assert "triager(text: redact(ticket.body))" in fixed
    # applying it clears the diagnostic
    edits = action.edit.changes[uri]
    for i, e in enumerate(sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)):
        change(client, uri, 2 + i, e.range, e.new_text)
    assert await published(client, uri, 1 + len(edits)) == []


async def test_did_you_mean_code_action(client: LanguageClient):
    text = HELLO.replace("model: tiny", "model: tiyn")
    uri, [d] = await open_doc(client, "hello.vox", text)
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=d.range,
        context=lsp.CodeActionContext(diagnostics=[d])))
    assert apply(text, actions[0].edit.changes[uri]) == HELLO
