"""What the server knows about each document: its latest check, made by the compiler's API.

One :class:`~vox.compiler.syntax.parser.DeclCache` is shared by every document and every
check, so an edit re-parses only the declaration it touched. Checks are pure functions of the
text, so a result is kept with the document version it was made from, and a feature that needs
the current version's result (hover right after typing) checks it on the spot.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import Workspace
from pygls.workspace.position_codec import PositionCodec

from vox.compiler.api import CheckResult, check_source
from vox.compiler.syntax.parser import DeclCache
from vox.lsp.positions import DocumentPositions


@dataclass(frozen=True)
class Checked:
    """One document version and the compiler's result for it."""

    uri: str
    version: int | None
    result: CheckResult
    positions: DocumentPositions


def uri_to_path(uri: str) -> str:
    return to_fs_path(uri) or uri


def path_to_uri(path: str) -> str:
    return from_fs_path(os.path.abspath(path)) or path


class DocumentStore:
    """Latest check per open document, and checks of the workspace's other `.vox` files."""

    def __init__(self) -> None:
        self.cache = DeclCache()
        self._checked: dict[str, Checked] = {}
        self._on_disk: dict[str, tuple[float, Checked]] = {}  # path -> (mtime, check)
        self._lock = threading.Lock()  # checks run on the worker thread and, on demand, the loop

    def check(self, uri: str, text: str, version: int | None, codec: PositionCodec) -> Checked:
        """Check ``text`` as the given version of ``uri`` (this does not record the result)."""
        with self._lock:
            result = check_source(uri_to_path(uri), text, self.cache)
        return Checked(uri, version, result, DocumentPositions(result.source, codec))

    def record(self, checked: Checked) -> None:
        self._checked[checked.uri] = checked

    def forget(self, uri: str) -> None:
        self._checked.pop(uri, None)

    def latest(self, uri: str) -> Checked | None:
        return self._checked.get(uri)

    def current(self, workspace: Workspace, uri: str) -> Checked | None:
        """The check of the document's current text (made now if the last one is stale)."""
        doc = workspace.text_documents.get(uri)
        if doc is None:
            return self._checked.get(uri) or self._disk(uri_to_path(uri), workspace.position_codec)
        checked = self._checked.get(uri)
        if checked is None or checked.version != doc.version or checked.result.source.text != doc.source:
            checked = self.check(uri, doc.source, doc.version, workspace.position_codec)
            self.record(checked)
        return checked

    def workspace_files(self, workspace: Workspace) -> list[Checked]:
        """Every open document and every `.vox` file under the workspace folders."""
        out: dict[str, Checked] = {}
        for uri in list(workspace.text_documents):
            checked = self.current(workspace, uri)
            if checked is not None:
                out[uri] = checked
        for root in _roots(workspace):
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
                for name in files:
                    if name.endswith(".vox"):
                        path = os.path.join(folder, name)
                        uri = path_to_uri(path)
                        if uri not in out:
                            checked = self._disk(path, workspace.position_codec)
                            if checked is not None:
                                out[uri] = checked
        return list(out.values())

    def _disk(self, path: str, codec: PositionCodec) -> Checked | None:
        try:
            mtime = os.stat(path).st_mtime
            hit = self._on_disk.get(path)
            if hit is not None and hit[0] == mtime:
                return hit[1]
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            return None
        checked = self.check(path_to_uri(path), text, None, codec)
        self._on_disk[path] = (mtime, checked)
        return checked


def _roots(workspace: Workspace) -> list[str]:
    roots = [uri_to_path(f.uri) for f in workspace.folders.values()]
    if not roots and workspace.root_path:
        roots = [workspace.root_path]
    return [r for r in roots if r and os.path.isdir(r)]
