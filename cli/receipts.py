"""`voxc receipts verify RUN_ID` and `voxc receipts list RUN_ID`: the run's signed receipts.

`verify` recomputes every entry's HMAC and the run's hash chain with the installation's key
(`VOX_RECEIPT_KEY`, or the key file in the state folder) and exits 1 if anything was altered,
removed or reordered, or if the ledger holds no receipts of the run (an unknown id is not a
verified chain).
"""

from __future__ import annotations

import argparse
import json
import os

from vox.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Streams

NAME = "receipts"
HELP = "verify or list the signed receipts of a run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify", "list"), help="verify the chain, or list the entries")
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where the receipt ledger and its key are (default: .vox)")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="the fleet's PostgreSQL database, where its receipts are")


def run(args: argparse.Namespace, streams: Streams) -> int:
    from vox.runtime.receipts import ReceiptError, ReceiptLedger, load_key

    from vox.runtime.durable import state_url

    url = state_url(args.state_dir, args.db)
    if not args.db and not os.path.exists(url[len("sqlite:///"):]):
        streams.fail(f"no receipt ledger in {args.state_dir}/ (use --state-dir or --db to say where it is)")
        return EXIT_USAGE
    try:
        ledger = ReceiptLedger(url, load_key(args.state_dir, os.environ))
    except ReceiptError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    with ledger:
        if args.action == "list":
            for r in ledger.entries(args.run_id):
                print(json.dumps(r.signed_fields(), ensure_ascii=False), file=streams.out)
            return EXIT_OK
        report = ledger.verify(args.run_id)
    if report.ok and report.count == 0:
        # Nothing signed is nothing verified: a mistyped id must not read as "chain intact".
        where = "the fleet's database" if args.db else f"{args.state_dir}/"
        streams.fail(f"the ledger in {where} holds no receipts of run `{args.run_id}`: check the id with "
                     "`voxc runs` (a run that made no `write` or `external` tool call has none)")
        return EXIT_FAILED
    if report.ok:
        print(f"ok: {report.count} receipts of run {args.run_id}, chain intact", file=streams.out)
        return EXIT_OK
    print(f"FAILED: the receipts of run {args.run_id} were tampered with:", file=streams.out)
    for problem in report.problems:
        print(f"  {problem}", file=streams.out)
    return EXIT_FAILED
