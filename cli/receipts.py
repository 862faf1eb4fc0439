"""`voxc receipts verify|list RUN_ID`, `voxc receipts keygen`, `voxc receipts public-key`.

`verify` checks the run's receipts: every entry's Ed25519 signature, their order, the run's signed
length, and the ledger's signed head against the newest head this machine has seen (so a ledger
restored from an older copy is noticed). It needs no secret: the public key is this machine's
signing key's (`VOX_SIGNING_KEY`, `VOX_SIGNING_KEY_FILE`, or ~/.config/vox/signing.key), or the one
given with `--public-key`, or else the one this machine saw the ledger signed with before, or else
the one stored beside the ledger (which it says: that shows only that the ledger is consistent).

exit status of `verify`:
  0  every receipt of the run verifies (Ed25519), chain intact
  1  something does not verify: an entry edited, removed or reordered, another key, or the
     ledger rolled back to an older copy
  2  usage: no ledger there, a key that cannot be read
  6  no receipts: the ledger holds none of that run (an unknown id, or a run that made no
     `write` or `external` tool call); nothing was verified
  7  the run's receipts verify, but (some) were signed with the old HMAC scheme, by a key kept in
     the state folder or VOX_RECEIPT_KEY: anyone who could read that key could have made them

`keygen` makes a key pair (the private half in ~/.config/vox/signing.key, or `--out FILE`, the
public half beside it) and says where to keep each. `public-key` prints the public key to give
whoever verifies.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from vox.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, Streams, usable_database

NAME = "receipts"
HELP = "verify or list the signed receipts of a run; make or show the signing key"
EXIT_NO_RECEIPTS = 6  # `verify`: nothing signed, so nothing verified
EXIT_OLD_SCHEME = 7  # `verify`: intact, but under the old HMAC scheme


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify", "list", "keygen", "public-key"),
                        help="verify a run's receipts, list them, make a signing key pair, or print the public key")
    parser.add_argument("run_id", metavar="RUN_ID", nargs="?", help="the run (verify, list)")
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where the receipt ledger is (default: .vox)")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="the fleet's PostgreSQL database, where its receipts are")
    parser.add_argument("--public-key", metavar="FILE|KEY",
                        help="verify: the public key to trust (a file, PEM or `ed25519:...`)")
    parser.add_argument("--out", metavar="FILE", help="keygen: where to write the private key "
                        "(default: ~/.config/vox/signing.key; the public key goes beside it, .pub)")


def run(args: argparse.Namespace, streams: Streams) -> int:
    if args.action in ("keygen", "public-key") and args.run_id:
        streams.fail(f"`voxc receipts {args.action}` takes no RUN_ID")
        return EXIT_USAGE
    if args.action == "keygen":
        return keygen(args, streams)
    if args.action in ("verify", "list") and not args.run_id:
        streams.fail(f"`voxc receipts {args.action}` needs the run's id: voxc receipts {args.action} RUN_ID")
        return EXIT_USAGE
    from vox.runtime.receipts import ReceiptError, ReceiptLedger, load_keys

    from vox.runtime.durable import state_url

    url = state_url(args.state_dir, args.db)
    if args.action == "public-key":
        return public_key(args, streams, url)
    if not args.db and not os.path.isfile(url[len("sqlite:///"):]):
        streams.fail(f"no receipt ledger in {args.state_dir}/ (use --state-dir or --db to say where it is)")
        return EXIT_USAGE
    try:
        if args.db:  # a ledger is never created here: a mistyped URL must not leave an empty one behind
            usable_database(args.db, must_exist=True)
        keys = load_keys(args.state_dir, os.environ, create=False)
        keys = keys.verifying(*given_key(args.public_key)) if args.public_key else keys.verifying()
        ledger = ReceiptLedger(url, keys)  # verifies only: it writes nothing but this machine's mark
    except (InputError, ReceiptError) as e:
        streams.fail(str(e))
        return EXIT_USAGE
    where = "the fleet's database" if args.db else f"{args.state_dir}/"
    none_there = (f"the ledger in {where} holds no receipts of run `{args.run_id}`: check the id with `voxc runs` "
                  "(a run that made no `write` or `external` tool call has none)")
    with ledger:
        if args.action == "list":
            entries = list(ledger.entries(args.run_id))
            for r in entries:
                print(json.dumps({"id": r.id, **r.signed_fields(), "scheme": r.scheme}, ensure_ascii=False),
                      file=streams.out)
            if not entries:  # an empty list is the answer, but say so: the id may be mistyped
                print(f"voxc: {none_there}", file=streams.err)
            return EXIT_OK
        try:
            report = ledger.verify(args.run_id)
        except ReceiptError as e:  # a ledger whose id or head record is not even readable
            print(f"FAILED: the receipt ledger in {where} does not verify: {e}", file=streams.out)
            return EXIT_FAILED
    return show_report(report, args, streams, none_there, keys)


def show_report(report, args, streams: Streams, none_there: str, keys) -> int:
    if not report.ok:
        print(f"FAILED: the receipts of run {args.run_id} do not verify:", file=streams.out)
        for problem in report.problems:
            print(f"  {problem}", file=streams.out)
        if report.other_key and not args.public_key:
            print(f"  (checked with key {report.key}, {report.trust}; to check against another, pass --public-key)",
                  file=streams.out)
        return EXIT_FAILED
    if report.count == 0:
        # Nothing signed is nothing verified: a mistyped id must not read as "chain intact".
        print(f"no receipts: {none_there}", file=streams.out)
        return EXIT_NO_RECEIPTS
    if report.old_scheme:
        signed = f"{report.old_scheme} of its {report.count}" if report.old_scheme < report.count else "its"
        print(f"old scheme: {signed} receipts of run {args.run_id} were signed with the old HMAC scheme (key from "
              f"{keys.hmac.source}); they verify and the chain is intact, but anyone who could read that key could "
              "have made them. Receipts signed from now on are signed with Ed25519.", file=streams.out)
        return EXIT_OLD_SCHEME
    print(f"ok: {report.count} receipts of run {args.run_id}, chain intact, signed with key {report.key} "
          f"({report.trust})", file=streams.out)
    if not report.pinned:
        print("note: that key was read from beside the ledger, so this shows only that the ledger is consistent "
              "(whoever can write the ledger could have signed it again with a key of their own): compare the "
              "fingerprint with the signer's, or pass --public-key", file=streams.out)
    if report.seen:
        print(f"rollback: {report.seen}", file=streams.out)
    return EXIT_OK


def given_key(text: str):
    """The public key of ``--public-key``: a file holding one, or the key itself."""
    from vox.runtime.receipts import PublicKey

    path = Path(text)
    if path.is_file():
        try:
            content = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise InputError(f"--public-key {text}: cannot read it as a public key file") from None
        return PublicKey.from_text(content, f"--public-key {text}"), f"the public key given in {text}"
    return PublicKey.from_text(text, "--public-key"), "the public key given"


def public_key(args: argparse.Namespace, streams: Streams, url: str) -> int:
    """This machine's signing key's public half, or else the one stored beside the ledger."""
    from vox.runtime.receipts import ReceiptError, ReceiptLedger, load_keys

    try:
        keys = load_keys(args.state_dir, os.environ, create=False)
        if keys.signing is not None:
            print(keys.signing.public.pem, end="", file=streams.out)
            print(f"voxc: the public half of this machine's signing key ({keys.signing.source}), fingerprint "
                  f"{keys.signing.public.fingerprint}", file=streams.err)
            return EXIT_OK
        if not args.db and not os.path.isfile(url[len("sqlite:///"):]):
            streams.fail(f"this machine has no signing key (VOX_SIGNING_KEY, VOX_SIGNING_KEY_FILE or "
                         f"{keys.config_dir}/signing.key) and there is no receipt ledger in {args.state_dir}/")
            return EXIT_USAGE
        if args.db:
            usable_database(args.db, must_exist=True)
        with ReceiptLedger(url, keys) as ledger:
            stored = ledger.public_key()
    except (InputError, ReceiptError) as e:
        streams.fail(str(e))
        return EXIT_USAGE
    if stored is None:
        streams.fail("the ledger holds no receipts signed with a public key yet, and this machine has no signing key")
        return EXIT_FAILED
    print(stored.pem, end="", file=streams.out)
    print(f"voxc: this machine has no signing key: this is the key stored beside the ledger (fingerprint "
          f"{stored.fingerprint}), as trustworthy as the ledger itself; check it with whoever signs", file=streams.err)
    return EXIT_OK


def keygen(args: argparse.Namespace, streams: Streams) -> int:
    from vox.runtime.receipts import (SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV, SIGNING_KEY_NAME, ReceiptError,
                                      config_dir, create_key_pair, public_key_path)

    path = Path(args.out) if args.out else config_dir(os.environ) / SIGNING_KEY_NAME
    if path.exists():
        streams.fail(f"{path} exists and is kept (receipts it signed verify only with its public half); "
                     "give another --out, or remove it first")
        return EXIT_USAGE
    try:
        key = create_key_pair(path, args.state_dir)
    except ReceiptError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    except OSError as e:
        streams.fail(f"cannot write {path}: {e.strerror}")
        return EXIT_USAGE
    default = not args.out or path.absolute() == (config_dir(os.environ) / SIGNING_KEY_NAME).absolute()
    use = ("it is this user's key: `voxc run` signs with it when neither VOX_SIGNING_KEY nor VOX_SIGNING_KEY_FILE "
           "is set" if default else f"sign with it by setting {SIGNING_KEY_FILE_ENV}={path}")
    print(f"made a receipt signing key pair (Ed25519, fingerprint {key.public.fingerprint}):\n"
          f"  private: {path}\n"
          f"    signs receipts. Keep it secret, readable only by the user who runs voxc (it is mode 0600), "
          f"and never in the state folder or its backups; {use} (or {SIGNING_KEY_ENV} holding its contents, from a "
          f"secret store). A fleet gives every worker the same one.\n"
          f"  public:  {public_key_path(path)}\n"
          f"    verifies receipts and nothing else: give it to whoever checks them, "
          f"`voxc receipts verify RUN_ID --public-key {public_key_path(path)}`; it may be published.",
          file=streams.out)
    return EXIT_OK
