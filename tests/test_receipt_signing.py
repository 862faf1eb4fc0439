"""Receipts a local process cannot forge (issue 12): Ed25519 entries whose private key is not in the
state folder, verified with the public key alone; rollback of the ledger to an older copy; "no
receipts"; ledgers of the old HMAC scheme; the first run's key; what tool code finds in its
environment; fleet workers' explicit keys.

The ledger-level tests run on SQLite and, when it is reachable, on PostgreSQL (a fresh table
prefix per test); the command-line ones through the installed console script, each with a home
folder of its own.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid

import anyio
import pytest

from vox.runtime import receipts
from vox.runtime.fleet.store import open_store
from vox.runtime.receipts import (
    FabricatedReceipt,
    HmacKey,
    LedgerKeyMismatch,
    LedgerRolledBack,
    PublicKey,
    ReceiptKeys,
    ReceiptLedger,
    SigningKey,
    load_keys,
    signed_message,
)

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
VOXC = str(pathlib.Path(sys.executable).with_name("voxc"))
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
KEY = SigningKey.from_seed(bytes(range(32)))
INTRUDER = SigningKey.from_seed(bytes(range(100, 132)))


def _pg_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: not available here
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not _pg_up(), reason="PostgreSQL is not running"))])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store("sqlite:///" + str(tmp_path / ".vox" / "state.sqlite"))
    else:
        s = open_store(PG_URL, prefix="vox_sig" + uuid.uuid4().hex[:8] + "_")
    yield s
    if request.param == "postgresql":
        s.drop_all()
    s.close()


def signer(tmp_path, key: SigningKey = KEY, machine: str = "machine") -> ReceiptKeys:
    """The keys of a process on ``machine``: its signing key, its own folder of high-water marks."""
    return ReceiptKeys(signing=key, config_dir=tmp_path / machine / ".config" / "vox")


def auditor(tmp_path, public: PublicKey | None = None, machine: str = "auditor") -> ReceiptKeys:
    return ReceiptKeys(trusted=public, trust="the public key given" if public else "",
                       config_dir=tmp_path / machine / ".config" / "vox")


def fill(ledger: ReceiptLedger, run: str, n: int) -> list:
    return [ledger.append(run, f"flow.main/{i}", "issue_refund", {"order": f"{run}-{i}", "amount": "19.99"},
                          {"refund_id": f"rf_{run}_{i}"}) for i in range(n)]


def writable(store) -> None:
    """What anyone who can write the store can do: drop the append-only guards."""
    if store.kind == "sqlite":
        store.run(lambda tx: (tx.execute("DROP TRIGGER IF EXISTS {p}receipt_no_update"),
                              tx.execute("DROP TRIGGER IF EXISTS {p}receipt_no_delete")))
    else:
        store.run(lambda tx: tx.execute("DROP TRIGGER IF EXISTS {p}receipt_append_only ON {p}receipt"))


TABLES = ("receipt", "receipt_run", "receipt_meta")


def snapshot(store) -> dict:
    """A copy of the ledger's tables, as a backup holds them."""
    return store.run(lambda tx: {t: tx.all(f"SELECT * FROM {{p}}{t}") for t in TABLES})


def restore(store, copy: dict) -> None:
    """Put a backup back (the whole ledger, consistent with itself)."""
    writable(store)

    def put(tx) -> None:
        for table, rows in copy.items():
            tx.execute(f"DELETE FROM {{p}}{table}")
            for row in rows:
                tx.execute(f"INSERT INTO {{p}}{table} VALUES ({', '.join('?' * len(row))})", row)

    store.run(put)


def sign_again(store, key: SigningKey, edit=lambda fields: fields) -> None:
    """The best forgery someone with the whole store, but not the private key, can make: entries
    edited at will, every entry, head and run head signed again with a key of their own, and that
    key's public half put in the ledger's place."""
    writable(store)

    def forge(tx) -> None:
        ledger = tx.one("SELECT value FROM {p}receipt_meta WHERE name = 'ledger_id'")[0]
        rows = tx.all("SELECT id, run, seq, pos, tool, args_sha256, result_sha256, at, n FROM {p}receipt "
                      "WHERE scheme = 'ed25519' ORDER BY n")
        prev, last_of_run = receipts.GENESIS, {}
        for old_id, run, seq, pos, tool, a, r, at, n in rows:
            fields = edit({"ledger": ledger, "n": n, "run": run, "seq": seq, "pos": pos, "tool": tool,
                           "args_sha256": a, "result_sha256": r, "at": at, "prev": prev})
            sig = key.sign(signed_message("entry", fields)).hex()
            tx.execute("DELETE FROM {p}receipt WHERE id = ?", (old_id,))
            tx.execute("INSERT INTO {p}receipt (id, run, seq, pos, tool, args_sha256, result_sha256, at, prev, mac, n, "
                       "scheme) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ed25519')",
                       (receipts.receipt_id(sig), run, seq, pos, tool, fields["args_sha256"], fields["result_sha256"],
                        at, prev, sig, n))
            prev, last_of_run[run] = sig, (seq + 1, sig)
        for run, (count, last) in last_of_run.items():
            tag = key.sign(signed_message("run-head", {"ledger": ledger, "run": run, "count": count, "last": last}))
            tx.execute("UPDATE {p}receipt_run SET head = ?, tag = ? WHERE run = ?", (last, tag.hex(), run))
        head = {"n": len(rows), "last": prev}
        head["signature"] = key.sign(signed_message("head", {"ledger": ledger, **head})).hex()
        tx.execute("UPDATE {p}receipt_meta SET value = ? WHERE name = 'head'", (json.dumps(head),))
        tx.execute("UPDATE {p}receipt_meta SET value = ? WHERE name = 'public_key'", (key.public.text,))

    store.run(forge)


# ---- forgery and tampering -----------------------------------------------------------------------


def test_an_entry_forged_without_the_private_key_fails_verification(store, tmp_path):
    ledger = ReceiptLedger(store, signer(tmp_path))
    made = fill(ledger, "run-1", 3)
    assert ledger.verify("run-1").ok
    # edited in place, and the ledger's own public key kept: the signature gives it away
    writable(store)
    store.run(lambda tx: tx.execute("UPDATE {p}receipt SET result_sha256 = ? WHERE id = ?",
                                    (receipts.digest({"refund_id": "rf_forged"}), made[1].id)))
    report = ReceiptLedger(store, auditor(tmp_path)).verify("run-1")
    assert not report.ok and any(made[1].id in p and "signature does not match" in p for p in report.problems)
    # edited, and the whole ledger signed again with a key of the forger's own
    sign_again(store, INTRUDER, lambda f: {**f, "result_sha256": receipts.digest({"refund_id": "rf_forged"})}
               if f["seq"] == 1 else f)
    for keys in (signer(tmp_path), auditor(tmp_path, KEY.public, machine="elsewhere")):
        report = ReceiptLedger(store, keys).verify("run-1")
        assert not report.ok and report.other_key, report
        assert report.problems[0] == (
            f"the ledger says its entries are signed with key {INTRUDER.public.fingerprint}, not with key "
            f"{KEY.public.fingerprint} ({keys.trust}): they were signed by someone else, or the ledger's key was replaced")
        forged = ReceiptLedger(store, keys).entries("run-1")[1]
        assert not ReceiptLedger(store, keys).has("run-1", forged.id)
    # only a verifier with no key of its own and no memory of the ledger is fooled, and it says so
    naive = ReceiptLedger(store, auditor(tmp_path, machine="fresh")).verify("run-1")
    assert naive.ok and not naive.pinned and naive.trust == "the key stored beside the ledger, not pinned"


def test_a_machine_that_saw_the_ledger_notices_its_key_replaced(store, tmp_path):
    ledger = ReceiptLedger(store, signer(tmp_path))
    fill(ledger, "run-1", 2)
    assert ReceiptLedger(store, auditor(tmp_path)).verify("run-1").ok  # trusted on first use, and pinned
    sign_again(store, INTRUDER)
    report = ReceiptLedger(store, auditor(tmp_path)).verify("run-1")
    assert not report.ok and report.pinned
    assert any(p.startswith(f"the ledger says its entries are signed with key {INTRUDER.public.fingerprint}, not "
                            f"with key {KEY.public.fingerprint}") for p in report.problems)


def test_the_public_key_alone_verifies(store, tmp_path):
    made = fill(ReceiptLedger(store, signer(tmp_path)), "run-1", 3)
    exported = KEY.public.pem  # what `voxc receipts public-key` prints
    public = PublicKey.from_text(exported)
    ledger = ReceiptLedger(store, public)  # no private key, no config folder: nothing to write
    report = ledger.verify("run-1")
    assert report.ok and report.count == 3 and report.key == KEY.public.fingerprint and report.pinned
    assert ledger.require_call("run-1", made[0].id, "issue_refund", {"order": "run-1-0", "amount": "19.99"},
                               {"refund_id": "rf_run-1_0"}) == made[0]
    with pytest.raises(receipts.ReceiptError, match="opened to verify only"):
        ledger.append("run-1", "flow.main/9", "issue_refund", {}, {})
    assert PublicKey.from_text(KEY.public.text) == public == PublicKey.from_text(base64.b64encode(public.raw).decode())


@pytest.mark.parametrize("column", ["args_sha256", "result_sha256"])
def test_tampering_with_a_digest_breaks_the_receipt(store, tmp_path, column):
    made = fill(ReceiptLedger(store, signer(tmp_path)), "run-1", 3)
    other = receipts.digest({"order": "run-1-1", "amount": "1999.00"})
    writable(store)
    store.run(lambda tx: tx.execute(f"UPDATE {{p}}receipt SET {column} = ? WHERE id = ?", (other, made[1].id)))
    ledger = ReceiptLedger(store, signer(tmp_path))
    report = ledger.verify("run-1")
    assert not report.ok
    assert report.problems == [f"entry {made[1].id} (seq 1, tool issue_refund): signature does not match its fields "
                               "(edited, or signed with another key)"]
    with pytest.raises(FabricatedReceipt, match="is not in the receipt ledger"):
        ledger.require_call("run-1", made[1].id, "issue_refund", {"order": "run-1-1", "amount": "1999.00"},
                            {"refund_id": "rf_run-1_1"})


def test_a_ledger_signed_with_another_key_is_refused_before_signing(store, tmp_path):
    fill(ReceiptLedger(store, signer(tmp_path)), "run-1", 1)
    other = ReceiptLedger(store, signer(tmp_path, INTRUDER, machine="other"))
    with pytest.raises(LedgerKeyMismatch, match=f"signed with key {KEY.public.fingerprint}, but this process signs "
                                                f"with key {INTRUDER.public.fingerprint}"):
        other.check_ready()
    with pytest.raises(LedgerKeyMismatch):
        other.append("run-2", "flow.main/0", "issue_refund", {}, {})
    assert ReceiptLedger(store, signer(tmp_path)).verify("run-1").ok


# ---- rollback ---------------------------------------------------------------------------------------


def test_restoring_an_older_copy_of_the_ledger_is_detected(store, tmp_path):
    ledger = ReceiptLedger(store, signer(tmp_path))
    fill(ledger, "run-1", 2)
    backup = snapshot(store)
    fill(ledger, "run-2", 2)  # e.g. a refund, signed after the backup
    restore(store, backup)
    mark = tmp_path / "machine" / ".config" / "vox" / "ledgers" / f"{ledger.ledger_id}.json"
    for run in ("run-1", "run-2"):  # whichever run is verified: the ledger as a whole went back
        report = ReceiptLedger(store, signer(tmp_path)).verify(run)
        assert not report.ok and report.count == (2 if run == "run-1" else 0)
        assert any(p.startswith(f"the receipt ledger in {ledger.where} was rolled back: this machine saw it hold 4 "
                                "signed entries (") and f"recorded in {mark}), it now holds 2" in p
                   for p in report.problems), report.problems
    with pytest.raises(LedgerRolledBack):  # and nothing is signed onto it
        ReceiptLedger(store, signer(tmp_path)).check_ready()
    with pytest.raises(LedgerRolledBack):
        ReceiptLedger(store, signer(tmp_path)).append("run-3", "flow.main/0", "issue_refund", {}, {})
    assert json.loads(mark.read_text())["n"] == 4  # a rolled-back ledger never lowers the mark
    # a restore made on purpose: remove the mark, and detection starts again from the restored head
    mark.unlink()
    assert ReceiptLedger(store, signer(tmp_path)).verify("run-1").ok


def test_a_ledger_rolled_back_and_written_again_is_detected(store, tmp_path):
    ledger = ReceiptLedger(store, signer(tmp_path))
    fill(ledger, "run-1", 1)
    backup = snapshot(store)
    fill(ledger, "run-2", 2)
    restore(store, backup)
    # a machine that never saw the newer head (no marks) goes on writing past it
    fill(ReceiptLedger(store, ReceiptKeys(signing=KEY)), "run-3", 3)
    report = ReceiptLedger(store, signer(tmp_path)).verify("run-3")
    assert not report.ok and report.count == 3
    assert any("was rolled back and written again: its entry 2 is not the one this machine saw" in p
               for p in report.problems), report.problems


def test_removing_the_newest_entries_is_detected_without_any_mark(store, tmp_path):
    ledger = ReceiptLedger(store, signer(tmp_path))
    fill(ledger, "run-1", 2)
    last = fill(ledger, "run-2", 1)[0]
    writable(store)
    store.run(lambda tx: (tx.execute("DELETE FROM {p}receipt WHERE id = ?", (last.id,)),
                          tx.execute("DELETE FROM {p}receipt_run WHERE run = 'run-2'")))
    report = ReceiptLedger(store, auditor(tmp_path, KEY.public, machine="fresh")).verify("run-1")
    assert not report.ok
    assert report.problems == ["the ledger's head records 3 entries, but entry 2 is missing: its newest entries "
                               "were removed"]


# ---- the old HMAC scheme ----------------------------------------------------------------------------

OLD_KEY = HmacKey(bytes(range(32)), "the test")


def old_ledger(store, runs: dict[str, int]) -> None:
    """A ledger as the HMAC version wrote it: schema version 1, one MAC'd chain per run."""
    guards = receipts._SQLITE_GUARDS if store.kind == "sqlite" else receipts._PG_GUARDS
    store.ensure("receipts", (receipts._V1 + guards,))
    store._ensured.discard("receipts")  # let the new version migrate it, as a new process would

    def write(tx) -> None:
        tx.execute("INSERT INTO {p}receipt_meta (name, value) VALUES ('key_check', ?)", (OLD_KEY.fingerprint,))
        for run, n in runs.items():
            prev = receipts.GENESIS
            for seq in range(n):
                fields = {"run": run, "seq": seq, "pos": f"flow.main/{seq}", "tool": "issue_refund",
                          "args_sha256": receipts.digest({"seq": seq}), "result_sha256": receipts.digest(True),
                          "at": 1_700_000_000_000 + seq, "prev": prev}
                mac = OLD_KEY.mac(fields)
                tx.execute("INSERT INTO {p}receipt (id, run, seq, pos, tool, args_sha256, result_sha256, at, prev, mac) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (receipts.receipt_id(mac), *fields.values(), mac))
                prev = mac
            tx.execute("INSERT INTO {p}receipt_run (run, count, head, tag) VALUES (?, ?, ?, ?)",
                       (run, n, prev, OLD_KEY.mac({"run": run, "count": n, "head": prev, "kind": "head"})))

    store.run(write)


def test_a_ledger_of_the_old_scheme_is_read_and_reported_as_such(store, tmp_path):
    old_ledger(store, {"run-old": 2, "run-resumed": 1})
    keys = ReceiptKeys(signing=KEY, hmac=OLD_KEY, config_dir=tmp_path / "config")
    ledger = ReceiptLedger(store, keys)  # migrates the tables; the old entries are kept as they are
    report = ledger.verify("run-old")
    assert report.ok and (report.count, report.old_scheme) == (2, 2)
    old = ledger.entries("run-old")
    assert {r.scheme for r in old} == {"hmac-sha256"} and ledger.has("run-old", old[0].id)
    # a run that began before the upgrade and goes on after it: its new entries are Ed25519
    new = ledger.append("run-resumed", "flow.main/1", "issue_refund", {"seq": 1}, True)
    assert (new.scheme, new.seq, new.n) == ("ed25519", 1, 0)
    report = ledger.verify("run-resumed")
    assert report.ok and (report.count, report.old_scheme) == (2, 1), report.problems
    # without the old key, the old entries cannot be checked: never passed off as verified
    report = ReceiptLedger(store, ReceiptKeys(trusted=KEY.public)).verify("run-old")
    assert not report.ok and report.problems == [
        "2 entries of run run-old were signed with the old HMAC scheme and cannot be checked without its key: set "
        "VOX_RECEIPT_KEY, or keep receipt.key in the state folder"]
    assert not ReceiptLedger(store, ReceiptKeys(trusted=KEY.public)).has("run-old", old[0].id)
    # an old entry edited: its MAC no longer matches
    writable(store)
    store.run(lambda tx: tx.execute("UPDATE {p}receipt SET tool = 'send_email' WHERE id = ?", (old[1].id,)))
    report = ReceiptLedger(store, keys).verify("run-old")
    assert not report.ok and any("its HMAC does not match its fields" in p for p in report.problems)


# ---- the command line ------------------------------------------------------------------------------

NOTE_PROGRAM = """\
tool note(text: str) -> str {
  effect: write
  idempotent: true
  bind: python("notes:note")
}

flow record(text: str) -> str {
  return note(text: text)
}
"""
NOTES = ("import os\n\ndef note(text, idempotency_key=None):\n"
         "    with open(os.path.join(os.path.dirname(__file__), 'calls.log'), 'a') as f:\n"
         "        f.write(text + '\\n')\n"
         "    return 'noted ' + text\n")


def environment(home: pathlib.Path, **more: str) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "NO_COLOR": "1", **more}


def voxc(cwd: pathlib.Path, env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([VOXC, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def program(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "prog.vox").write_text(NOTE_PROGRAM)
    (folder / "notes.py").write_text(NOTES)
    return folder


def calls(folder: pathlib.Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_first_run_makes_the_users_key_outside_the_state_folder_and_says_so(tmp_path):
    """README's first command, with no set-up: it works, and says where the new key is."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLES / "hello.vox", work / "hello.vox")
    env = environment(tmp_path / "home", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    first = voxc(work, env, "run", "hello.vox", "--input", '{"name": "Ada"}')
    assert first.returncode == 0, first.stderr
    key = tmp_path / "xdg" / "vox" / "signing.key"
    assert (f"voxc: made a receipt signing key for this user: {key} (private: it signs this machine's receipts; keep "
            f"it out of the state folder and its backups) and {key.with_suffix('.pub')} (public: give it to whoever "
            "verifies receipts, `voxc receipts verify RUN_ID --public-key FILE`)\n") in first.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not (tmp_path / "home" / ".config").exists()  # XDG_CONFIG_HOME is honoured
    assert not [p.name for p in (work / ".vox").iterdir() if p.name.endswith((".key", ".pub"))
                and p.name != "state.key"]
    again = voxc(work, env, "run", "hello.vox", "--input", '{"name": "Ada"}')
    assert again.returncode == 0 and "signing key" not in again.stderr, again.stderr


def test_verify_with_only_the_public_key(program, tmp_path):
    signer_env = environment(tmp_path / "signer")
    assert voxc(program, signer_env, "run", "prog.vox", "--input", '{"text": "a"}', "--run-id", "r1").returncode == 0
    exported = voxc(program, signer_env, "receipts", "public-key")
    assert exported.returncode == 0 and exported.stdout.startswith("-----BEGIN PUBLIC KEY-----"), exported.stderr
    (tmp_path / "vendor.pub").write_text(exported.stdout)
    audit = tmp_path / "audit"  # the state folder handed to an auditor, who has no private key
    shutil.copytree(program / ".vox", audit)
    auditor_env = environment(tmp_path / "auditor")
    checked = voxc(tmp_path, auditor_env, "receipts", "verify", "r1", "--state-dir", str(audit),
                   "--public-key", str(tmp_path / "vendor.pub"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    fingerprint = PublicKey.from_text(exported.stdout).fingerprint
    assert checked.stdout.startswith(f"ok: 1 receipts of run r1, chain intact, signed with key {fingerprint} (the "
                                     f"public key given in {tmp_path / 'vendor.pub'})\n")
    assert not (tmp_path / "auditor" / ".config" / "vox" / "signing.key").exists()  # verifying makes no key
    # the ledger re-signed by someone with the folder but not the key: the auditor's public key says no
    sign_again(open_store("sqlite:///" + str(audit / "state.sqlite")), INTRUDER)
    forged = voxc(tmp_path, auditor_env, "receipts", "verify", "r1", "--state-dir", str(audit),
                  "--public-key", str(tmp_path / "vendor.pub"))
    assert forged.returncode == 1 and forged.stdout.startswith("FAILED: the receipts of run r1 do not verify:\n")
    assert f"signed with key {INTRUDER.public.fingerprint}, not with key {fingerprint}" in forged.stdout
    # without a key to trust, verify says what it could and could not check
    naive = voxc(tmp_path, environment(tmp_path / "naive"), "receipts", "verify", "r1", "--state-dir", str(audit))
    assert naive.returncode == 0
    assert "the key stored beside the ledger, not pinned" in naive.stdout and "note: that key was read from beside " \
        "the ledger, so this shows only that the ledger is consistent" in naive.stdout


def test_restoring_an_older_copy_of_the_sqlite_file_is_detected(program, tmp_path):
    env = environment(tmp_path / "home")
    assert voxc(program, env, "run", "prog.vox", "--input", '{"text": "a"}', "--run-id", "r1").returncode == 0
    state = program / ".vox" / "state.sqlite"
    copy = tmp_path / "backup.sqlite"
    with sqlite3.connect(str(state)) as live, sqlite3.connect(str(copy)) as backup:
        live.backup(backup)  # a consistent copy of the file, as a backup tool takes it
    assert voxc(program, env, "run", "prog.vox", "--input", '{"text": "b"}', "--run-id", "r2").returncode == 0
    for leftover in program.joinpath(".vox").glob("state.sqlite-*"):
        leftover.unlink()
    shutil.copy(copy, state)  # the refund of r2 is gone from the ledger
    verified = voxc(program, env, "receipts", "verify", "r1")
    assert verified.returncode == 1
    assert "was rolled back: this machine saw it hold 2 signed entries" in verified.stdout, verified.stdout
    gone = voxc(program, env, "receipts", "verify", "r2")
    assert gone.returncode == 1 and "rolled back" in gone.stdout  # not "no receipts": they were removed
    # and nothing more is signed onto it: the next run stops before its tool acts
    assert calls(program) == ["a", "b"]
    refused = voxc(program, env, "run", "prog.vox", "--input", '{"text": "c"}', "--run-id", "r3")
    assert refused.returncode != 0 and "was rolled back" in refused.stderr
    assert calls(program) == ["a", "b"]


def test_verify_of_a_run_without_receipts_says_no_receipts(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLES / "hello.vox", work / "hello.vox")
    env = environment(tmp_path / "home")
    ran = voxc(work, env, "run", "hello.vox", "--input", '{"name": "Ada"}', "--run-id", "greeting")
    assert ran.returncode == 0, ran.stderr
    verified = voxc(work, env, "receipts", "verify", "greeting")
    assert (verified.returncode, verified.stderr) == (6, "")
    assert verified.stdout.startswith("no receipts: the ledger in .vox/ holds no receipts of run `greeting`")
    assert "chain intact" not in verified.stdout
    helped = voxc(work, env, "receipts", "--help")
    assert "6  no receipts" in helped.stdout and "7  the run's receipts verify, but" in helped.stdout


def test_a_ledger_of_the_old_scheme_is_reported_by_verify(tmp_path):
    state = tmp_path / ".vox"
    store = open_store("sqlite:///" + str(state / "state.sqlite"))
    old_ledger(store, {"run-old": 2})
    store.close()
    key_file = state / "receipt.key"  # where the old scheme kept its key
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (OLD_KEY.reveal().hex() + "\n").encode())
    os.close(fd)
    env = environment(tmp_path / "home")
    verified = voxc(tmp_path, env, "receipts", "verify", "run-old")
    assert verified.returncode == 7, verified.stdout + verified.stderr
    assert verified.stdout == (
        "old scheme: its receipts of run run-old were signed with the old HMAC scheme (key from .vox/receipt.key); they "
        "verify and the chain is intact, but anyone who could read that key could have made them. Receipts signed "
        "from now on are signed with Ed25519.\n")
    key_file.unlink()
    unverifiable = voxc(tmp_path, env, "receipts", "verify", "run-old")
    assert unverifiable.returncode == 1 and "cannot be checked without its key" in unverifiable.stdout


def test_keygen_makes_a_pair_and_says_where_each_half_goes(program, tmp_path):
    env = environment(tmp_path / "home")
    out = tmp_path / "secrets" / "vox-signing.key"
    made = voxc(program, env, "receipts", "keygen", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert f"  private: {out}\n" in made.stdout and f"  public:  {out.with_suffix('.pub')}\n" in made.stdout
    assert f"sign with it by setting VOX_SIGNING_KEY_FILE={out}" in made.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = voxc(program, env, "receipts", "keygen", "--out", str(out))
    assert again.returncode == 2 and "exists and is kept" in again.stderr
    inside = voxc(program, env, "receipts", "keygen", "--out", str(program / ".vox" / "signing.key"))
    assert inside.returncode == 2 and "is inside the state folder" in inside.stderr
    # signing with it from the file, or from its contents in the environment: one key
    public = PublicKey.from_text(out.with_suffix(".pub").read_text())
    by_file = environment(tmp_path / "home", VOX_SIGNING_KEY_FILE=str(out))
    assert voxc(program, by_file, "run", "prog.vox", "--input", '{"text": "a"}', "--run-id", "r1").returncode == 0
    by_env = environment(tmp_path / "other", VOX_SIGNING_KEY=out.read_text())
    assert voxc(program, by_env, "run", "prog.vox", "--input", '{"text": "b"}', "--run-id", "r2").returncode == 0
    for run in ("r1", "r2"):
        checked = voxc(program, environment(tmp_path / "auditor"), "receipts", "verify", run,
                       "--public-key", public.text)
        assert checked.returncode == 0 and f"signed with key {public.fingerprint}" in checked.stdout, checked.stdout
    assert not (tmp_path / "home" / ".config" / "vox" / "signing.key").exists()  # the named key was used
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_a_key_file_in_the_state_folder_or_readable_by_others_is_refused(program, tmp_path):
    inside = program / ".vox" / "signing.key"
    inside.parent.mkdir()
    receipts.create_key_pair(tmp_path / "k" / "signing.key")
    shutil.copy(tmp_path / "k" / "signing.key", inside)
    with pytest.raises(receipts.KeyFileError, match="is inside the state folder"):
        load_keys(program / ".vox", {"VOX_SIGNING_KEY_FILE": str(inside)})
    os.chmod(tmp_path / "k" / "signing.key", 0o640)
    with pytest.raises(receipts.KeyFileError, match="may be read by other users"):
        load_keys(program / ".vox", {"VOX_SIGNING_KEY_FILE": str(tmp_path / "k" / "signing.key")})


def test_the_forms_of_the_signing_key_variable():
    from cryptography.hazmat.primitives import serialization

    seed = bytes(range(32))
    pem = KEY._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
    for text in (base64.b64encode(seed).decode(), seed.hex(), pem, base64.b64encode(seed + KEY.public.raw).decode()):
        assert load_keys("/nonexistent", {"VOX_SIGNING_KEY": text}).signing.public == KEY.public
    with pytest.raises(receipts.KeyFileError, match="second half is not the public key"):
        load_keys("/nonexistent", {"VOX_SIGNING_KEY": base64.b64encode(seed + bytes(32)).decode()})


# ---- what tool code can reach ------------------------------------------------------------------------

PEEK_PROGRAM = """\
tool peek(text: str) -> str {
  effect: write
  idempotent: true
  bind: python("peek:peek")
}

flow look(text: str) -> str {
  return peek(text: text)
}
"""
PEEK = """\
import json, os, subprocess

KEYS = ("VOX_SIGNING_KEY", "VOX_SIGNING_KEY_FILE", "VOX_STATE_KEY", "VOX_RECEIPT_KEY")


def peek(text, idempotency_key=None):
    child = subprocess.run(["env"], capture_output=True, text=True).stdout  # a program the tool starts
    initial = open("/proc/self/environ", "rb").read().split(b"\\0") if os.path.exists("/proc/self/environ") else []
    return json.dumps({
        "environ": sorted(k for k in os.environ if k in KEYS),
        "getenv": sorted(k for k in KEYS if os.getenv(k) is not None),
        "child": sorted(line.split("=", 1)[0] for line in child.splitlines() if line.split("=", 1)[0] in KEYS),
        "initial": sorted(k for k in KEYS if any(e.startswith(k.encode() + b"=") for e in initial)),
    })
"""


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "no-durable"])
def test_a_python_tool_does_not_find_the_keys_in_its_environment(tmp_path, durable):
    folder = tmp_path / "prog"
    folder.mkdir()
    (folder / "prog.vox").write_text(PEEK_PROGRAM)
    (folder / "peek.py").write_text(PEEK)
    seed = bytes(range(50, 82))
    env = environment(tmp_path / "home", VOX_SIGNING_KEY=base64.b64encode(seed).decode(), VOX_STATE_KEY="ab" * 32,
                      VOX_RECEIPT_KEY="old-key")
    done = voxc(folder, env, "run", "prog.vox", "--input", '{"text": "x"}', "--run-id", "peek",
                *(() if durable else ("--no-durable",)))
    assert done.returncode == 0, done.stderr
    seen = json.loads(json.loads(done.stdout))
    assert (seen["environ"], seen["getenv"], seen["child"]) == ([], [], [])
    # what is documented as out of reach of this measure: the environment the process started with
    if os.path.exists("/proc/self/environ"):
        assert seen["initial"] == ["VOX_RECEIPT_KEY", "VOX_SIGNING_KEY", "VOX_STATE_KEY"]
    # the keys were read before they were withdrawn: the receipt is signed with the given one
    public = SigningKey.from_seed(seed).public
    checked = voxc(folder, environment(tmp_path / "auditor"), "receipts", "verify", "peek", "--public-key", public.text)
    assert checked.returncode == 0, checked.stdout


def test_an_environment_copied_after_the_withdrawal_still_finds_the_keys(monkeypatch):
    from vox.runtime import sealing

    monkeypatch.setattr(sealing, "_withdrawn", {})
    monkeypatch.setenv("VOX_SIGNING_KEY", base64.b64encode(bytes(range(32))).decode())
    sealing.withdraw_key_variables()
    assert "VOX_SIGNING_KEY" not in os.environ
    assert load_keys("/nonexistent", dict(os.environ)).signing.public == KEY.public


# ---- fleet workers ------------------------------------------------------------------------------------


def test_a_worker_needs_an_explicit_signing_key(tmp_path):
    from vox.runtime.worker import FleetKeysMissing, fleet_keys_missing, serve

    home = tmp_path / "home"
    load_keys(tmp_path / ".vox", {"HOME": str(home)})  # this user has a key of their own: not enough for a fleet
    env = environment(home, VOX_STATE_KEY="ab" * 32)
    done = voxc(tmp_path, env, "worker", "--db", "postgresql://nobody@127.0.0.1:9/none")
    assert done.returncode == 2
    assert "set VOX_SIGNING_KEY (the same values on every machine), e.g. make a signing key with `voxc receipts " \
           "keygen --out FILE`" in done.stderr
    assert fleet_keys_missing({"VOX_STATE_KEY": "ab" * 32, "VOX_SIGNING_KEY_FILE": "/k"}) == []
    assert fleet_keys_missing({"VOX_RECEIPT_KEY": "fleet"}) == ["VOX_STATE_KEY"]
    with pytest.raises(FleetKeysMissing, match="needs VOX_SIGNING_KEY"):
        anyio.run(serve, "postgresql://nobody@127.0.0.1:9/none", str(tmp_path / ".vox"), {"VOX_STATE_KEY": "ab" * 32}, 1)
