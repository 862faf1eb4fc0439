"""``python -m vox.runtime.sim``: run the simulator (the child process of :func:`start_process`)."""

import argparse
import sys

from vox.runtime.sim.server import run_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vox.runtime.sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return run_forever(args.host, args.port, args.seed)


if __name__ == "__main__":
    sys.exit(main())
