"""`voxc lsp`: wires each LSP capability to its module. Nothing else happens here.

The server is a thin adapter over :mod:`vox.compiler.api` (the same check as `voxc check`), with
one per-declaration parse cache shared by every document.
"""

from __future__ import annotations

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from vox.lsp import code_actions, completion, formatting, hover, navigation, rename, symbols
from vox.lsp.diagnostics import DiagnosticsScheduler
from vox.lsp.documents import DocumentStore

NAME = "voxc"


class VoxLanguageServer(LanguageServer):
    def __init__(self, version: str, *, debounce: float = 0.0):
        super().__init__(NAME, version)
        self.store = DocumentStore()
        self.diagnostics = DiagnosticsScheduler(self, self.store, debounce=debounce)

    def answer(self, uri: str, feature, *args):
        """``feature(checked, *args)`` for the current text of ``uri``; None for an unknown document."""
        checked = self.store.current(self.workspace, uri)
        return None if checked is None else feature(checked, *args)


def build_server(version: str = "0", *, debounce: float = 0.0) -> VoxLanguageServer:
    server = VoxLanguageServer(version, debounce=debounce)

    @server.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        options = params.initialization_options or {}
        if isinstance(options, dict):
            if "debounceMs" in options:
                server.diagnostics.debounce = max(0, float(options["debounceMs"])) / 1000
            if "specUrl" in options:
                server.diagnostics.spec_url = options["specUrl"] or None

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        server.diagnostics.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        server.diagnostics.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        server.diagnostics.closed(params.text_document.uri)

    @server.feature(lsp.SHUTDOWN)
    def shutdown(params) -> None:
        server.diagnostics.shutdown()

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(params: lsp.HoverParams):
        return server.answer(params.text_document.uri, hover.hover, params.position)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: lsp.DefinitionParams):
        return server.answer(params.text_document.uri, navigation.definition, params.position)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def on_references(params: lsp.ReferenceParams):
        return server.answer(params.text_document.uri, navigation.references, params.position,
                                     params.context.include_declaration)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_document_symbol(params: lsp.DocumentSymbolParams):
        return server.answer(params.text_document.uri, symbols.document_symbols)

    @server.feature(lsp.WORKSPACE_SYMBOL)
    def on_workspace_symbol(params: lsp.WorkspaceSymbolParams):
        return symbols.workspace_symbols(server.store.workspace_files(server.workspace), params.query)

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=[".", "@", "{", "[", ":", " "]))
    def on_completion(params: lsp.CompletionParams):
        return server.answer(params.text_document.uri, completion.complete, params.position)

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def on_prepare_rename(params: lsp.PrepareRenameParams):
        return server.answer(params.text_document.uri, rename.prepare_rename, params.position)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    def on_rename(params: lsp.RenameParams):
        return server.answer(params.text_document.uri, rename.rename, params.position, params.new_name)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(params: lsp.DocumentFormattingParams):
        return server.answer(params.text_document.uri, formatting.format_document, server.store)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    def on_code_action(params: lsp.CodeActionParams):
        return server.answer(params.text_document.uri, code_actions.code_actions, params.range,
                                         server.diagnostics.spec_url)

    return server
