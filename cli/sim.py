"""`voxc sim`: run the model simulator, a local HTTP server speaking the OpenAI and Anthropic APIs.

The first line on standard output is ``sim listening on http://HOST:PORT``; point a provider's
``base_url`` at that URL (``/v1`` appended for OpenAI clients). It serves until interrupted
(SIGINT or SIGTERM), then exits 0.

It answers ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic), with
streaming, tool calls, logprobs and usage (prompt caching simulated). Requests carrying
``x-vox-run`` and ``x-vox-agent`` headers are answered from the mock scripts installed with
``POST /_sim/runs/{run}``; other requests get deterministic, schema-valid answers derived from
``--seed``. Faults (429/5xx, timeouts, malformed or truncated bodies, latency) are injected with
``POST /_sim/faults``; ``GET /_sim/stats`` counts requests, faults and tokens.

Exit status: 0 after a clean shutdown, 2 when the address cannot be bound.
"""

from __future__ import annotations

import argparse

from vox.cli.common import EXIT_USAGE, Streams, whole_number
from vox.cli.limits import MAX_SEED

NAME = "sim"
HELP = "run the OpenAI/Anthropic-compatible model simulator"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `sim`'s arguments."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=whole_number(0, 65535), default=8765,
                        help="port to listen on; 0 picks a free one (default: 8765)")
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0,
                        help="seed of the generated answers (default: 0)")


def run(args: argparse.Namespace, streams: Streams) -> int:
    """Serve until interrupted; return the exit status."""
    from vox.runtime.sim.server import run_forever  # the runtime is imported only when it runs

    try:
        return run_forever(args.host, args.port, args.seed, out=streams.out)
    except OSError as exc:
        streams.fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_USAGE
