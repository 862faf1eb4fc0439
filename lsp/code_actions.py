"""Code actions: each diagnostic's machine-applicable fix, as a quick fix."""

from __future__ import annotations

from lsprotocol import types as lsp

from vox.lsp.diagnostics import to_lsp
from vox.lsp.documents import Checked


def code_actions(checked: Checked, range_: lsp.Range, spec_url: str | None) -> list[lsp.CodeAction]:
    wanted = checked.positions.span(range_)
    actions = []
    for d in checked.result.diagnostics:
        if d.fix is None or d.span.end < wanted.start or d.span.start > wanted.end:
            continue
        edits = [lsp.TextEdit(range=checked.positions.range(e.span), new_text=e.new_text) for e in d.fix.edits]
        actions.append(
            lsp.CodeAction(
                title=d.fix.message,
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[to_lsp(d, checked, spec_url)],
                is_preferred=len(actions) == 0,
                edit=lsp.WorkspaceEdit(changes={checked.uri: edits}),
            )
        )
    return actions
