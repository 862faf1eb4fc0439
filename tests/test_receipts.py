"""The receipt ledger (vox.runtime.receipts): Ed25519 entries on one chain. Signing keys, rollback
detection, the old HMAC scheme and tool code's reach are in tests/test_receipt_signing.py."""

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
    HmacKey,
    KeyFileError,
    ReceiptConflict,
    ReceiptKeys,
    ReceiptLedger,
    SigningKey,
    find_receipt_ids,
    load_keys,
)

KEY = SigningKey.from_seed(bytes(range(32)))
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))


@pytest.fixture
def db(tmp_path):
    return tmp_path / ".vox" / "receipts.db"


@pytest.fixture
def ledger(db, tmp_path):
    with ReceiptLedger(db, ReceiptKeys(signing=KEY, config_dir=tmp_path / "config")) as led:
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
    assert made[0].prev == receipts.GENESIS and made[1].prev == made[0].signature
    assert [r.n for r in made] == [0, 1, 2, 3, 4] and {r.scheme for r in made} == {"ed25519"}
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


def test_runs_share_one_chain(ledger):
    a = fill(ledger, "run-a", 3)
    b = fill(ledger, "run-b", 2)
    # a run's first entry goes on from the ledger's last one: the ledger is one chain over runs
    assert b[0].prev == a[-1].signature and (b[0].seq, b[0].n) == (0, 3) and a[0].id != b[0].id
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


def test_require_call_checks_the_arguments_and_result_a_receipt_signs(ledger, db):
    args, result = {"order_id": "1", "amount": "19.99"}, {"refund_id": "rf_1"}
    r = ledger.append("run-1", "flow.main/0", "issue_refund", args, result)
    assert ledger.require_call("run-1", r.id, "issue_refund", {"amount": "19.99", "order_id": "1"}, result) == r
    with pytest.raises(FabricatedReceipt, match=f"receipt {r.id} of run run-1 does not sign the call it is read "
                                                "for: its arguments differ from those signed in the ledger"):
        ledger.require_call("run-1", r.id, "issue_refund", {**args, "order_id": "2"}, result)
    with pytest.raises(FabricatedReceipt, match="its arguments and result differ"):
        ledger.require_call("run-1", r.id, "issue_refund", {**args, "order_id": "2"}, {"refund_id": "rf_2"})
    with pytest.raises(FabricatedReceipt, match="made by tool issue_refund, not send_email"):
        ledger.require_call("run-1", r.id, "send_email", args, result)
    # digests of other arguments written over the signed ones: the entry's MAC no longer matches
    con = raw(db)
    con.execute("UPDATE vox_receipt SET args_sha256 = ? WHERE id = ?", (receipts.digest({**args, "order_id": "2"}), r.id))
    con.close()
    with pytest.raises(FabricatedReceipt, match="is not in the receipt ledger"):
        ledger.require_call("run-1", r.id, "issue_refund", {**args, "order_id": "2"}, result)
    assert not ledger.verify("run-1").ok


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
    assert not report.ok  # seq is signed: the moved entries no longer match their signatures
    assert {p.split(":")[0] for p in report.problems if "signature does not match" in p} == {
        f"entry {made[1].id} (seq 3, tool issue_refund)", f"entry {made[3].id} (seq 1, tool issue_refund)"}


def test_wrong_key(db):
    with ReceiptLedger(db, KEY) as led:
        made = fill(led)
    with ReceiptLedger(db, OTHER_KEY) as led:
        report = led.verify("run-1")
        assert not report.ok and report.other_key
        assert report.problems[0].startswith(f"the ledger says its entries are signed with key {KEY.public.fingerprint}, "
                                              f"not with key {OTHER_KEY.public.fingerprint}")
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


def test_concurrent_appends_keep_one_valid_chain(db, tmp_path):
    keys = ReceiptKeys(signing=KEY, config_dir=tmp_path / "config")
    shared = ReceiptLedger(db, keys)
    errors: list[BaseException] = []

    def work(worker: int, own_connection: bool) -> None:
        led = ReceiptLedger(db, keys) if own_connection else shared
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
    assert sorted(r.n for r in shared.entries("run-par")) == list(range(240))
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


# -- the keys ---------------------------------------------------------------------------------

def test_the_old_schemes_key_from_environment():
    hex_key = "ab" * 32
    assert load_keys("/nonexistent", {"VOX_RECEIPT_KEY": hex_key}).hmac.reveal() == bytes.fromhex(hex_key)
    import hashlib

    assert load_keys("/nonexistent", {"VOX_RECEIPT_KEY": "correct horse"}).hmac.reveal() == \
        hashlib.sha256(b"correct horse").digest()
    with pytest.raises(KeyFileError, match="empty"):
        load_keys("/nonexistent", {"VOX_RECEIPT_KEY": " "})


def test_a_signing_key_is_derived_from_the_old_variable(tmp_path):
    """A deployment that sets VOX_RECEIPT_KEY (a fleet, the test runner) keeps one signing key on
    every machine: the Ed25519 key is derived from it, and nothing is written."""
    a = load_keys(tmp_path / ".vox", {"VOX_RECEIPT_KEY": "fleet-key", "HOME": str(tmp_path)})
    b = load_keys(tmp_path / "elsewhere", {"VOX_RECEIPT_KEY": "fleet-key", "HOME": str(tmp_path / "other")})
    assert a.signing.public == b.signing.public and "VOX_RECEIPT_KEY" in a.signing.source
    assert a.signing.public != load_keys(tmp_path, {"VOX_RECEIPT_KEY": "other-key"}).signing.public
    assert list(tmp_path.iterdir()) == []
    # marks go beside a home the environment names; `voxc test`'s bare environment keeps none
    assert a.config_dir == tmp_path / ".config" / "vox"
    assert load_keys(tmp_path, {"VOX_RECEIPT_KEY": "vox-test-key"}).config_dir is None


def test_the_signing_key_is_made_private_in_the_config_folder_and_reused(tmp_path):
    state, home = tmp_path / ".vox", tmp_path / "home"
    k1 = load_keys(state, {"HOME": str(home)})
    path = home / ".config" / "vox" / "signing.key"
    assert k1.signing.created and k1.signing.source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (home / ".config" / "vox" / "signing.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    k2 = load_keys(state, {"HOME": str(home)})
    assert not k2.signing.created and k2.signing.public == k1.signing.public
    assert sorted(p.name for p in path.parent.iterdir()) == ["signing.key", "signing.pub"]  # no temporary files
    assert not state.exists()  # nothing in the state folder
    assert load_keys(state, {"HOME": str(tmp_path / "nobody")}, create=False).signing is None


def test_key_file_readable_by_others_is_refused(tmp_path):
    load_keys(tmp_path / ".vox", {"HOME": str(tmp_path)})
    path = tmp_path / ".config" / "vox" / "signing.key"
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keys(tmp_path / ".vox", {"HOME": str(tmp_path)})


def test_malformed_key_file(tmp_path):
    path = tmp_path / "signing.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(KeyFileError, match="is not an Ed25519 private key") as err:
        load_keys(tmp_path / ".vox", {"VOX_SIGNING_KEY_FILE": str(path)})
    assert "not a key" not in str(err.value)


def test_key_never_shows(tmp_path, db):
    import base64

    seed = bytes(range(7, 39))
    secret_text = base64.b64encode(seed).decode()
    keys = load_keys(tmp_path, {"VOX_SIGNING_KEY": secret_text, "HOME": str(tmp_path)})
    forms = {seed.hex(), seed.hex().upper(), secret_text, repr(seed)}
    led = ReceiptLedger(db, keys)
    r = led.append("run-1", 0, "t", {"a": 1}, {"b": 2})
    shown = [repr(keys), str(keys), repr(keys.signing), repr(led), str(led), repr(r)]
    for exc_factory in (
        lambda: led.append("run-1", 0, "t", {"a": 2}, {"b": 2}),
        lambda: led.require("run-1", "rcpt_aaaaaaaaaaaaaaaa"),
        lambda: load_keys(tmp_path, {"VOX_SIGNING_KEY": secret_text[:-4]}),
        lambda: ReceiptLedger(db, OTHER_KEY).check_ready(),
    ):
        with pytest.raises(Exception) as err:
            exc_factory()
        shown += [str(err.value), repr(err.value)]
    with ReceiptLedger(db, OTHER_KEY) as other:
        shown += other.verify("run-1").problems
    hmac_env = load_keys(tmp_path, {"VOX_RECEIPT_KEY": "cd" * 32})
    shown += [repr(hmac_env), repr(hmac_env.hmac), repr(hmac_env.signing)]
    forms.add("cd" * 32)
    for text in shown:
        for form in forms:
            assert form not in text
    for secret in (keys.signing, keys, hmac_env.hmac):
        with pytest.raises(TypeError):
            pickle.dumps(secret)
    led.close()


def test_hmac_key_must_be_long_enough():
    with pytest.raises(ValueError):
        HmacKey(b"short")


# ---- `voxc receipts verify`, through the installed console script -------------------------------


def voxc(cwd, *argv: str):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "voxc")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOX", "XDG_"))}
    env["HOME"] = str(cwd / "home")  # the user's signing key is made there, not in the real home
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


def test_cli_verify_of_an_unknown_run_is_no_receipts(tmp_path):
    (tmp_path / "notes.py").write_text("def note(text, idempotency_key=None):\n    return 'noted ' + text\n")
    (tmp_path / "prog.vox").write_text(NOTE_PROGRAM)
    ran = voxc(tmp_path, "run", "prog.vox", "--input", '{"text": "a"}', "--run-id", "run-1")
    assert ran.returncode == 0, ran.stderr
    key = tmp_path / "home" / ".config" / "vox" / "signing.key"
    known = voxc(tmp_path, "receipts", "verify", "run-1")
    assert known.returncode == 0, known.stderr
    assert known.stdout.splitlines()[0] == (
        f"ok: 1 receipts of run run-1, chain intact, signed with key {load_keys(tmp_path / '.vox', {'HOME': str(tmp_path / 'home')}).signing.public.fingerprint} "
        f"(this machine's signing key, from {key})")
    unknown = voxc(tmp_path, "receipts", "verify", "run-2")
    assert (unknown.returncode, unknown.stderr) == (6, ""), unknown.stderr  # 6: nothing signed, nothing verified
    assert unknown.stdout == (
        "no receipts: the ledger in .vox/ holds no receipts of run `run-2`: check the id with `voxc runs` "
        "(a run that made no `write` or `external` tool call has none)\n")


def test_the_signed_bytes_do_not_change(tmp_path):
    """Receipts signed by earlier versions must still verify: the canonical JSON that is hashed and
    signed (sorted keys, no spaces, non-ASCII as UTF-8) is pinned by a signature (Ed25519 signatures
    are deterministic), and the old scheme's by a MAC made before it became the plan serialiser's
    `canonical_json`."""
    db = tmp_path / "r.db"
    ReceiptLedger(db).close()  # the tables, and a fixed ledger id (normally random)
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("INSERT INTO vox_receipt_meta (name, value) VALUES ('ledger_id', 'ldg_0123456789abcdef')")
    con.close()
    args, result = {"order": "é42", "amount": "19.99", "n": [1, 2.5, None, True]}, {"ok": True, "id": "r☃"}
    with ReceiptLedger(db, KEY, clock=lambda: 1_700_000_000.0) as led:
        r = led.append("run-1", "flow.main/0", "issue_refund", args, result)
    assert r.args_sha256 == "c5362c34892ee22989bd75d37c75ac18a2d92a9fd2f8ef599530758176016cca"
    assert r.result_sha256 == "48e4f592d17bc40d45e1966f275c5b4dabbc8a6097b8829f0b58d6aad6292684"
    assert receipts.signed_message("entry", r.signed_fields("ldg_0123456789abcdef")) == (
        'vox receipts v2 entry\n{"args_sha256":"c5362c34892ee22989bd75d37c75ac18a2d92a9fd2f8ef599530758176016cca",'
        '"at":1700000000000,"ledger":"ldg_0123456789abcdef","n":0,"pos":"flow.main/0","prev":"' + "0" * 64 + '",'
        '"result_sha256":"48e4f592d17bc40d45e1966f275c5b4dabbc8a6097b8829f0b58d6aad6292684","run":"run-1","seq":0,'
        '"tool":"issue_refund"}').encode()
    assert r.signature == PINNED_SIGNATURE
    assert r.id == PINNED_ID
    old = {"run": "run-1", "seq": 0, "pos": "flow.main/0", "tool": "issue_refund", "args_sha256": r.args_sha256,
           "result_sha256": r.result_sha256, "at": 1_700_000_000_000, "prev": receipts.GENESIS}
    mac = HmacKey(bytes(range(32))).mac(old)
    assert mac == "779ee1191a6de0c691a1a28c9f6ea8f27afdd490366ac71a025e02abc9c60501"
    assert receipts.receipt_id(mac) == "rcpt_o6pocgi2nxqmnenb"


PINNED_SIGNATURE = ("0b338ad6733de50b5e7d3cd0fe70428cbbc7eb81893ba7ec324ccee16c40956f"
                    "ed8b01dd0560cc7c6cb27506882f4f6a469d0364174e70e2824c692401fd1d09")
PINNED_ID = "rcpt_bmzyvvtthxsqwxt5"
