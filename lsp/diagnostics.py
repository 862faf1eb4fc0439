"""Publishing the compiler's diagnostics: on open and on every change, newest text only.

Checks run one at a time on a worker thread, so the server keeps answering while one runs.
Stale work is dropped at every step: a change cancels the previous change's pending check
(``debounce`` seconds of quiet are waited for first, 0 by default), a check whose version is
no longer the document's newest is skipped before it starts, and a result that went stale while
it was computed is never published. A burst of edits that arrives while a check runs therefore
costs one more check, of the last text.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types as lsp

import vox.compiler
from vox.compiler.diagnostics.codes import title
from vox.compiler.diagnostics.model import Diagnostic, Severity
from vox.lsp.documents import Checked, DocumentStore, path_to_uri

SOURCE = "voxc"

_SEVERITY = {
    Severity.ERROR: lsp.DiagnosticSeverity.Error,
    Severity.WARNING: lsp.DiagnosticSeverity.Warning,
    Severity.NOTE: lsp.DiagnosticSeverity.Information,
}


def default_spec_url() -> str | None:
    """`spec/diagnostics.md` of this checkout, when voxc runs from one (an editable install)."""
    page = pathlib.Path(vox.compiler.__file__).resolve().parent.parent / "spec" / "diagnostics.md"
    return page.as_uri() if page.is_file() else None


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading (as tests/test_spec.py checks the spec's links).

    >>> heading_anchor("V0011: `=` instead of `:` in a member")
    'v0011--instead-of--in-a-member'
    """
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def code_url(code: str, spec_url: str | None) -> str | None:
    """Where ``code`` is documented: its section of the spec's diagnostics page."""
    if not spec_url:
        return None
    try:
        heading = f"{code}: {title(code)}"
    except KeyError:
        return spec_url
    return f"{spec_url}#{heading_anchor(heading)}"


def to_lsp(d: Diagnostic, checked: Checked, spec_url: str | None) -> lsp.Diagnostic:
    """One compiler diagnostic as an LSP diagnostic: labels become related information, notes
    and the help line are appended to the message (every client shows the message)."""
    positions = checked.positions
    message = d.message
    for note in d.notes:
        message += f"\nnote: {note}"
    if d.help:
        message += f"\nhelp: {d.help}"
    related = []
    for label in d.labels:
        if label.path is None or label.path == d.path:
            location = lsp.Location(uri=checked.uri, range=positions.range(label.span))
        else:  # another file: its positions are not at hand, point at its start
            location = lsp.Location(uri=path_to_uri(label.path), range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
        related.append(lsp.DiagnosticRelatedInformation(location=location, message=label.message))
    url = code_url(d.code, spec_url)
    return lsp.Diagnostic(
        range=positions.range(d.span),
        message=message,
        severity=_SEVERITY.get(d.severity, lsp.DiagnosticSeverity.Error),
        code=d.code,
        code_description=lsp.CodeDescription(href=url) if url else None,
        source=SOURCE,
        related_information=related or None,
        data={"fix": d.fix.message} if d.fix is not None else None,
    )


def publish(server, checked: Checked, spec_url: str | None) -> None:
    diagnostics = [to_lsp(d, checked, spec_url) for d in checked.result.diagnostics]
    server.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(uri=checked.uri, version=checked.version, diagnostics=diagnostics)
    )


class DiagnosticsScheduler:
    """Checks documents after changes and publishes the results of the newest versions only."""

    def __init__(self, server, store: DocumentStore, *, debounce: float = 0.0):
        self.server = server
        self.store = store
        self.debounce = debounce
        self.spec_url = default_spec_url()
        self._pending: dict[str, asyncio.Task] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxc-check")

    def changed(self, uri: str) -> None:
        """The document changed (or opened): check it soon, dropping any older pending check."""
        task = self._pending.get(uri)
        if task is not None and not task.done():
            task.cancel()
        self._pending[uri] = asyncio.get_running_loop().create_task(self._check(uri))

    def closed(self, uri: str) -> None:
        task = self._pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self.store.forget(uri)
        self.server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def _newest(self, uri: str):
        doc = self.server.workspace.text_documents.get(uri)
        return None if doc is None else doc.version

    async def _check(self, uri: str) -> None:
        if self.debounce:
            await asyncio.sleep(self.debounce)  # cancelled here when another change comes in
        doc = self.server.workspace.text_documents.get(uri)
        if doc is None:
            return
        text, version, codec = doc.source, doc.version, self.server.workspace.position_codec

        def work() -> Checked | None:
            if self._newest(uri) != version:  # superseded while queued: skip
                return None
            return self.store.check(uri, text, version, codec)

        checked = await asyncio.get_running_loop().run_in_executor(self._worker, work)
        if checked is None or self._newest(uri) != version:
            return
        self.store.record(checked)
        publish(self.server, checked, self.spec_url)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
