"""`voxc worker --db postgresql://...`: join a fleet of workers sharing one database.

The worker runs what `voxc run --db URL --submit` enqueues, beats a heartbeat, and recovers the
pending runs of a worker that stops beating. It stops on SIGINT or SIGTERM.

Every worker is given the same keys, explicitly, in its environment: `VOX_STATE_KEY`, and the
receipt signing key (`VOX_SIGNING_KEY`, or `VOX_SIGNING_KEY_FILE` naming a key file; made with
`voxc receipts keygen`). A worker never makes a key of its own: receipts it signed with one would
not verify against the fleet's public key.
"""

from __future__ import annotations

import argparse
import os
import signal

import anyio

from vox.cli.common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, Streams, duration_value, usable_database,
                             whole_number)

NAME = "worker"
HELP = "join a fleet: run the runs submitted to a PostgreSQL database"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="the fleet's database, postgresql://... (or VOX_DATABASE_URL)")
    parser.add_argument("--concurrency", type=whole_number(1), default=16,
                        help="runs at once on this worker (default 16)")
    parser.add_argument("--fleet-concurrency", type=whole_number(1), default=None, metavar="N",
                        help="runs at once across every worker of the fleet (kept by the shared queue)")
    parser.add_argument("--tenant-concurrency", type=whole_number(1), default=None, metavar="N",
                        help="runs of one tenant at once across the fleet")
    parser.add_argument("--heartbeat", type=duration_value("seconds", positive=True), default=2.0, metavar="SECONDS",
                        help="beat every SECONDS; a worker silent for three beats is recovered (default 2)")
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="this machine's state folder (DBOS's local files); everything shared is in --db")


def run(args: argparse.Namespace, streams: Streams) -> int:
    if not args.db:
        streams.fail("a worker needs the fleet's database: --db postgresql://... (or VOX_DATABASE_URL)")
        return EXIT_USAGE
    from vox.runtime.worker import WorkerDeclaredDead, fleet_keys_missing, serve

    missing = fleet_keys_missing(os.environ)
    if missing:
        hints = {"VOX_STATE_KEY": "export VOX_STATE_KEY=$(openssl rand -hex 32)",
                 "VOX_SIGNING_KEY": "make a signing key with `voxc receipts keygen --out FILE` (outside the state "
                                    "folder) and set VOX_SIGNING_KEY_FILE=FILE, or VOX_SIGNING_KEY to its contents"}
        streams.fail(f"a fleet's runs must be readable and verifiable on every worker: set {' and '.join(missing)} "
                     f"(the same values on every machine), e.g. {'; '.join(hints[name] for name in missing)}")
        return EXIT_USAGE
    try:
        usable_database(args.db, must_exist=True)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE

    def ready(executor: str) -> None:
        print(f"worker {executor} serving {args.db.split('@')[-1]}", file=streams.out, flush=True)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            await serve(args.db, args.state_dir, dict(os.environ), args.concurrency, args.heartbeat, ready,
                        fleet_concurrency=args.fleet_concurrency, tenant_concurrency=args.tenant_concurrency)

    try:
        anyio.run(main)
    except WorkerDeclaredDead as e:
        streams.fail(f"{e}; start it again to rejoin the fleet")
        return EXIT_FAILED
    except BaseExceptionGroup as group:
        dead = group.subgroup(WorkerDeclaredDead)
        if dead is None:
            raise
        streams.fail(f"{dead.exceptions[0]}; start it again to rejoin the fleet")
        return EXIT_FAILED
    return EXIT_OK
