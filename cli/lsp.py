"""`voxc lsp`: run the Vox language server, speaking LSP over stdin and stdout.

Editors start it themselves (see the README for neovim and VS Code). It reports diagnostics as
you type (the same checks as `voxc check`), hover, go to definition, references, outline and
workspace symbols, completion, rename, formatting (as `voxc fmt`) and quick fixes. Nothing but
LSP messages is written to stdout; logs go to stderr, or to ``--log-file``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from vox.cli.common import EXIT_OK, EXIT_USAGE, Streams, duration_value

NAME = "lsp"
HELP = "run the language server (LSP over stdio)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `lsp`'s arguments."""
    parser.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default; accepted for editors that pass it)")
    parser.add_argument("--log-file", metavar="PATH", help="write the server's log here instead of stderr")
    parser.add_argument("--debounce-ms", type=duration_value("milliseconds", positive=False), default=0.0,
                        metavar="MS",
                        help="wait this long after a change before checking (default: 0; bursts are coalesced anyway)")


def run(args: argparse.Namespace, streams: Streams) -> int:
    """Serve until the client disconnects."""
    from vox.cli.main import package_version
    from vox.lsp.memory import tune_gc
    from vox.lsp.server import build_server

    if args.log_file:
        try:
            handler = logging.FileHandler(args.log_file, encoding="utf-8")
        except OSError as e:
            streams.fail(f"cannot write the log to {args.log_file}: {e.strerror or e}")
            return EXIT_USAGE
        logging.basicConfig(handlers=[handler], level=logging.WARNING)
    else:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server = build_server(package_version(), debounce=args.debounce_ms / 1000)
    tune_gc()
    server.start_io()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """`python -m vox.lsp`: the same as `voxc lsp`, before or without the CLI's wiring."""
    parser = argparse.ArgumentParser(prog="voxc lsp", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv), Streams(out=sys.stdout, err=sys.stderr, inp=sys.stdin))
