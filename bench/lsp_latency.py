"""Latency of `voxc lsp` from `didChange` to the published diagnostics, on a 2,000-line file.

    python bench/lsp_latency.py [--lines 2000] [--edits 200]

Starts the real server over stdio with pygls's client, opens a program generated like
bench/check_speed.py's (clean, about --lines lines), then sends --edits one-character edits to a
declaration in the middle of the file, alternately inserting and deleting (every other edit
introduces a syntax error, the next one fixes it), each after the previous version's diagnostics
arrived. Reports p50/p95/max of the time from sending `didChange` to receiving the
`publishDiagnostics` of that version.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import sys
import time

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_speed import generate  # noqa: E402


async def measure(lines: int, edits: int) -> list[float]:
    text = generate(lines)
    client = LanguageClient("bench", "0")
    waiting: dict[int, asyncio.Future] = {}

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: lsp.PublishDiagnosticsParams):
        future = waiting.pop(params.version, None)
        if future is not None and not future.done():
            future.set_result((time.perf_counter(), len(params.diagnostics)))

    await client.start_io(sys.executable, "-m", "vox.lsp")
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
    client.initialized(lsp.InitializedParams())
    uri = "file:///tmp/bench.vox"
    loop = asyncio.get_running_loop()
    waiting[1] = loop.create_future()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="vox", version=1, text=text)))
    await waiting[1]
    # the middle of the file: a line inside a flow body
    all_lines = text.split("\n")
    target = next(i for i in range(len(all_lines) // 2, len(all_lines)) if "return" in all_lines[i])
    col = all_lines[target].index("return")
    samples = []
    for n in range(edits):
        version = n + 2
        future = waiting[version] = loop.create_future()
        if n % 2 == 0:
            change = lsp.TextDocumentContentChangePartial(
                range=lsp.Range(lsp.Position(target, col), lsp.Position(target, col)), text="(")
        else:
            change = lsp.TextDocumentContentChangePartial(
                range=lsp.Range(lsp.Position(target, col), lsp.Position(target, col + 1)), text="")
        start = time.perf_counter()
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=version), [change]))
        end, count = await future
        if (count > 0) != (n % 2 == 0):
            raise SystemExit(f"edit {n}: expected {'an error' if n % 2 == 0 else 'no errors'}, got {count} diagnostics")
        samples.append((end - start) * 1000)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=200)
    args = parser.parse_args(argv)
    samples = asyncio.run(measure(args.lines, args.edits))
    q = statistics.quantiles(samples, n=100)
    print(f"program: about {args.lines} lines; {len(samples)} edits (half break the file, half fix it)")
    print(f"didChange -> publishDiagnostics  p50 {q[49]:.1f} ms  p95 {q[94]:.1f} ms  max {max(samples):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
