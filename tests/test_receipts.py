"""The HMAC receipt ledger (vox.runtime.receipts)."""

from __future__ import annotations

import doctest
import os
import pickle
import sqlite3
import stat
import threading

import pytest

from vox.runtime import receipts
from vox.runtime.receipts import (
    FabricatedReceipt,
    KeyFileError,
    ReceiptConflict,
    ReceiptKey,
    ReceiptLedger,
    find_receipt_ids,
    load_key,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def db(tmp_path):
    return tmp_path / ".vox" / "receipts.db"


@pytest.fixture
def ledger(db):
    with ReceiptLedger(db, KEY) as led:
        yield led


def fill(ledger: ReceiptLedger, run: str = "run-1", n: int = 5) -> list:
    return [ledger.append(run, f"flow.main/{i}", "issue_refund", {"order": i, "amount_micros": 1_000 * i}, {"ok": True, "refund_id": f"r{i}"}) for i in range(n)]


def raw(db):
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("DROP TRIGGER IF EXISTS vox_receipt_no_update")
    con.execute("DROP TRIGGER IF EXISTS vox_receipt_no_delete")
    return con


def test_doctests():
    assert doctest.testmod(receipts).failed == 0


def test_append_and_verify(ledger):
    made = fill(ledger)
    assert [r.seq for r in made] == [0, 1, 2, 3, 4]
    assert made[0].prev == receipts.GENESIS and made[1].prev == made[0].mac
    assert all(r.id.startswith("rcpt_") and len(r.id) == 21 for r in made)
    report = ledger.verify("run-1")
    assert report.ok and report.count == 5 and report.problems == []
    assert ledger.entries("run-1") == made
    assert ledger.get(made[2].id) == made[2]
    assert ledger.get(made[2].id.upper()) == made[2]
    assert ledger.has("run-1", made[2].id) and ledger.has("run-1", made[2].id, tool="issue_refund")
    assert not ledger.has("run-1", made[2].id, tool="send_email")
    assert not ledger.has("run-2", made[2].id)
    assert ledger.verify("never-ran").ok and ledger.verify("never-ran").count == 0


def test_runs_have_separate_chains(ledger):
    a = fill(ledger, "run-a", 3)
    b = fill(ledger, "run-b", 2)
    assert b[0].prev == receipts.GENESIS and a[0].id != b[0].id
    assert ledger.verify("run-a").ok and ledger.verify("run-b").ok
    assert ledger.runs() == ["run-a", "run-b"]


def test_fabricated_receipt(ledger):
    [r] = fill(ledger, n=1)
    with pytest.raises(FabricatedReceipt, match="fabricated receipt: rcpt_aaaaaaaaaaaaaaaa is not in the receipt ledger of run run-1"):
        ledger.require("run-1", "rcpt_aaaaaaaaaaaaaaaa")
    with pytest.raises(FabricatedReceipt, match="made by tool issue_refund, not send_email"):
        ledger.require("run-1", r.id, tool="send_email")
    with pytest.raises(FabricatedReceipt):
        ledger.require("run-other", r.id)
    assert ledger.require("run-1", r.id) == r
    text = f"Refund issued, receipt {r.id.upper()}; also see rcpt_bbbbbbbbbbbbbbbb and {r.id}."
    assert find_receipt_ids(text) == [r.id, "rcpt_bbbbbbbbbbbbbbbb"]


def test_triggers_refuse_edits(ledger, db):
    fill(ledger, n=2)
    con = sqlite3.connect(str(db), isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE vox_receipt SET tool = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM vox_receipt")
    con.close()


@pytest.mark.parametrize(
    "column, value",
    [("tool", "'send_email'"), ("args_sha256", "'" + "a" * 64 + "'"), ("result_sha256", "'" + "b" * 64 + "'"), ("at", "at + 1"), ("pos", "'elsewhere'")],
)
def test_edited_field_is_detected(ledger, db, column, value):
    made = fill(ledger)
    con = raw(db)
    con.execute(f"UPDATE vox_receipt SET {column} = {value} WHERE id = ?", (made[2].id,))
    con.close()
    report = ledger.verify("run-1")
    assert not report.ok
    assert any(made[2].id in p and "signature does not match" in p for p in report.problems)
    assert not ledger.has("run-1", made[2].id)


def test_deleted_middle_row_is_detected(ledger, db):
    made = fill(ledger)
    con = raw(db)
    con.execute("DELETE FROM vox_receipt WHERE id = ?", (made[2].id,))
    con.close()
    report = ledger.verify("run-1")
    assert not report.ok and report.count == 4
    text = "\n".join(report.problems)
    assert "chain broken" in text and "expected seq 2" in text and "head records 5" in text


def test_deleted_last_row_is_detected(ledger, db):
    made = fill(ledger)
    con = raw(db)
    con.execute("DELETE FROM vox_receipt WHERE id = ?", (made[-1].id,))
    con.close()
    report = ledger.verify("run-1")
    assert not report.ok and any("head records 5" in p for p in report.problems)


def test_reordered_rows_are_detected(ledger, db):
    made = fill(ledger)
    con = raw(db)
    con.execute("UPDATE vox_receipt SET seq = -1 WHERE id = ?", (made[1].id,))
    con.execute("UPDATE vox_receipt SET seq = 1 WHERE id = ?", (made[3].id,))
    con.execute("UPDATE vox_receipt SET seq = 3 WHERE id = ?", (made[1].id,))
    con.close()
    report = ledger.verify("run-1")
    assert not report.ok and any("chain broken" in p for p in report.problems)


def test_wrong_key(db):
    with ReceiptLedger(db, KEY) as led:
        made = fill(led)
    with ReceiptLedger(db, OTHER_KEY) as led:
        report = led.verify("run-1")
        assert not report.ok
        assert "signed with a different key" in report.problems[0]
        assert not led.has("run-1", made[0].id)
        with pytest.raises(FabricatedReceipt):
            led.require("run-1", made[0].id)


def test_append_is_idempotent_per_position(ledger):
    first = ledger.append("run-1", "flow.main/0", "issue_refund", {"order": 1}, {"ok": True})
    again = ledger.append("run-1", "flow.main/0", "issue_refund", {"order": 1}, {"ok": True})
    assert again == first
    assert ledger.verify("run-1").count == 1


def test_conflicting_reappend_raises(ledger):
    r = ledger.append("run-1", "flow.main/0", "issue_refund", {"order": 1}, {"ok": True})
    with pytest.raises(ReceiptConflict, match=f"already has receipt {r.id} at position flow.main/0.*arguments"):
        ledger.append("run-1", "flow.main/0", "issue_refund", {"order": 2}, {"ok": True})
    with pytest.raises(ReceiptConflict, match="result"):
        ledger.append("run-1", "flow.main/0", "issue_refund", {"order": 1}, {"ok": False})
    with pytest.raises(ReceiptConflict, match="tool"):
        ledger.append("run-1", "flow.main/0", "send_email", {"order": 1}, {"ok": True})
    assert ledger.verify("run-1").ok and ledger.verify("run-1").count == 1


def test_argument_order_does_not_matter(ledger):
    a = ledger.append("run-1", 0, "t", {"a": 1, "b": [1, 2]}, None)
    assert ledger.append("run-1", 0, "t", {"b": [1, 2], "a": 1}, None) == a


def test_concurrent_appends_keep_one_valid_chain(db):
    shared = ReceiptLedger(db, KEY)
    errors: list[BaseException] = []

    def work(worker: int, own_connection: bool) -> None:
        led = ReceiptLedger(db, KEY) if own_connection else shared
        try:
            for i in range(40):
                led.append("run-par", f"branch{worker}/{i}", "send", {"w": worker, "i": i}, {"ok": True})
                led.append("run-par", f"branch{worker}/{i}", "send", {"w": worker, "i": i}, {"ok": True})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            if own_connection:
                led.close()

    threads = [threading.Thread(target=work, args=(w, w % 2 == 0)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = shared.verify("run-par")
    assert report.ok, report.problems
    assert report.count == 240
    shared.close()


def test_ledger_survives_reopen(db):
    with ReceiptLedger(db, KEY) as led:
        fill(led, n=2)
    with ReceiptLedger(db, KEY) as led:
        led.append("run-1", "flow.main/9", "t", {}, {})
        assert led.verify("run-1").ok and led.verify("run-1").count == 3
    con = sqlite3.connect(str(db))
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


# -- the key ---------------------------------------------------------------------------------

def test_key_from_environment():
    hex_key = "ab" * 32
    assert load_key("/nonexistent", {"VOX_RECEIPT_KEY": hex_key}).reveal() == bytes.fromhex(hex_key)
    import hashlib

    assert load_key("/nonexistent", {"VOX_RECEIPT_KEY": "correct horse"}).reveal() == hashlib.sha256(b"correct horse").digest()
    with pytest.raises(KeyFileError, match="empty"):
        load_key("/nonexistent", {"VOX_RECEIPT_KEY": " "})


def test_key_file_is_created_private_and_reused(tmp_path):
    state = tmp_path / ".vox"
    k1 = load_key(state, {})
    path = state / "receipt.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(k1.reveal()) == 32
    assert load_key(state, {}).reveal() == k1.reveal()
    assert [p.name for p in state.iterdir()] == ["receipt.key"]  # no temporary files left


def test_key_file_readable_by_others_is_refused(tmp_path):
    load_key(tmp_path, {})
    os.chmod(tmp_path / "receipt.key", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(tmp_path, {})


def test_malformed_key_file(tmp_path):
    path = tmp_path / "receipt.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not hex")
    os.close(fd)
    with pytest.raises(KeyFileError, match="does not hold a hex key") as err:
        load_key(tmp_path, {})
    assert "not hex" not in str(err.value)


def test_key_never_shows(tmp_path, db):
    secret_text = "super secret receipt passphrase"
    key = load_key(tmp_path, {"VOX_RECEIPT_KEY": secret_text})
    forms = {key.reveal().hex(), key.reveal().hex().upper(), secret_text, repr(key.reveal())}
    led = ReceiptLedger(db, key)
    r = led.append("run-1", 0, "t", {"a": 1}, {"b": 2})
    shown = [repr(key), str(key), repr(led), str(led), repr(r)]
    for exc_factory in (
        lambda: led.append("run-1", 0, "t", {"a": 2}, {"b": 2}),
        lambda: led.require("run-1", "rcpt_aaaaaaaaaaaaaaaa"),
    ):
        with pytest.raises(Exception) as err:
            exc_factory()
        shown += [str(err.value), repr(err.value)]
    with ReceiptLedger(db, OTHER_KEY) as other:
        shown += other.verify("run-1").problems
    hex_env = load_key(tmp_path, {"VOX_RECEIPT_KEY": "cd" * 32})
    shown += [repr(hex_env)]
    forms.add("cd" * 32)
    for text in shown:
        for form in forms:
            assert form not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    led.close()


def test_key_must_be_long_enough():
    with pytest.raises(ValueError):
        ReceiptKey(b"short")


# ---- `voxc receipts verify`, through the installed console script -------------------------------


def voxc(cwd, *argv: str):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "voxc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOX")}
    return subprocess.run([script, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


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


def test_cli_verify_of_an_unknown_run_fails(tmp_path):
    (tmp_path / "notes.py").write_text("def note(text, idempotency_key=None):\n    return 'noted ' + text\n")
    (tmp_path / "prog.vox").write_text(NOTE_PROGRAM)
    ran = voxc(tmp_path, "run", "prog.vox", "--input", '{"text": "a"}', "--run-id", "run-1")
    assert ran.returncode == 0, ran.stderr
    known = voxc(tmp_path, "receipts", "verify", "run-1")
    assert (known.returncode, known.stdout) == (0, "ok: 1 receipts of run run-1, chain intact\n"), known.stderr
    unknown = voxc(tmp_path, "receipts", "verify", "run-2")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == (
        "voxc: error: the ledger in .vox/ holds no receipts of run `run-2`: check the id with `voxc runs` "
        "(a run that made no `write` or `external` tool call has none)\n")


def test_the_signed_bytes_do_not_change(tmp_path):
    """Receipts signed by earlier versions must still verify: the canonical JSON that is hashed and
    signed (sorted keys, no spaces, non-ASCII as UTF-8) is pinned by a signature made before it
    became the plan serialiser's `canonical_json`."""
    with ReceiptLedger(tmp_path / "r.db", KEY, clock=lambda: 1_700_000_000.0) as led:
        r = led.append("run-1", "flow.main/0", "issue_refund",
                       {"order": "é42", "amount": "19.99", "n": [1, 2.5, None, True]}, {"ok": True, "id": "r☃"})
    assert r.args_sha256 == "c5362c34892ee22989bd75d37c75ac18a2d92a9fd2f8ef599530758176016cca"
    assert r.result_sha256 == "48e4f592d17bc40d45e1966f275c5b4dabbc8a6097b8829f0b58d6aad6292684"
    assert r.mac == "779ee1191a6de0c691a1a28c9f6ea8f27afdd490366ac71a025e02abc9c60501"
    assert r.id == "rcpt_o6pocgi2nxqmnenb"
