"""Receipts as types that carry what was done (spec/types.md#receipts): a `Receipt[t]` binding holds
the receipt of the call, wherever it is bound (`let`, `par`, `for`); `r.id`, `r.args` and `r.result`
read the call it signs, checked against the ledger; a run's input cannot give one.

The runtime tests run real programs on the local simulator with real Python tool bindings, and
compare what the program holds with the receipt ledger.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys

import pytest

from vox.compiler.api import check_source
from vox.compiler.plan import ir, lower_plan
from vox.compiler.plan.model import RecordDef
from vox.runtime.host import RunOptions, Runtime
from vox.runtime.receipts import digest

SHOP = '''
import json, os, pathlib, threading

_LOCK = threading.Lock()  # `par` branches call tools in threads of their own

def _count(name):
    with _LOCK:
        path = pathlib.Path(os.environ["SHOP_COUNTS"])
        counts = json.loads(path.read_text()) if path.exists() else {}
        counts[name] = counts.get(name, 0) + 1
        path.write_text(json.dumps(counts))

def refund(order_id, amount):
    _count("refund")
    return {"refund_id": "rf_" + order_id, "amount": amount}

def confirm(note):
    _count("confirm")
    return "confirmed " + note
'''

PROGRAM = '''
provider sim = sim { clearance: [public] }
model small = sim/"sim-small" {
  context: 16_000
  max_output: 300
  price: { input: $1, output: $2 }
  capabilities: [tools, json_schema]
}

type Refunded = { refund_id: str, amount: money }
tool refund(order_id: str, amount: money) -> Refunded {
  effect: write
  idempotent: true
  bind: python("shop:refund")
}
tool confirm(note: str) -> str {
  effect: write
  idempotent: true
  approval: human
  bind: python("shop:confirm")
}

type Facts = { id: str, order_id: str, amount: money, refund_id: str, refunded: money }
type Paid = { order_id: str, refund: Receipt[refund] }
type Claim = { order_id: str, reply: str, refund: Receipt[refund] }

gate honest(c: Claim) {
  check c.refund.args.order_id == c.order_id else halt
}

agent clerk(request: str) -> Claim {
  model: small
  tools: [refund]
  gates: [honest]
  budget: { tokens: 20_000, cost: $0.10, steps: 4, tool_calls: 2 }
  prompt: "Handle this request: {request}"
}

flow handle(request: str) -> Claim {
  return clerk(request: request)
}

gate real(c: Claim) {
  check receipts_ok else halt
}

agent loose_clerk(request: str) -> Claim {
  model: small
  tools: [refund]
  gates: [real]
  budget: { tokens: 20_000, cost: $0.10, steps: 4, tool_calls: 2 }
  prompt: "Handle this request: {request}"
}

flow handle_loose(request: str) -> Claim {
  return loose_clerk(request: request)
}

flow listed(a: str) -> list[Receipt[refund]] {
  return [refund(order_id: a, amount: $1)]
}

flow let_typed(order_id: str) -> Receipt[refund] {
  let r: Receipt[refund] = refund(order_id: order_id, amount: $5)
  return r
}

flow untyped(order_id: str) -> Refunded {
  let r = refund(order_id: order_id, amount: $5)
  return r
}

flow in_par(a: str, b: str) -> list[Receipt[refund]] {
  par {
    let x: Receipt[refund] = refund(order_id: a, amount: $1)
    let y: Receipt[refund] = refund(order_id: b, amount: $2)
  }
  return [x, y]
}

flow in_for(ids: list[str]) -> list[Receipt[refund]] {
  let rs: list[Receipt[refund]] = for id in ids max 3 { refund(order_id: id, amount: $3) }
  return rs
}

flow returned_for(ids: list[str]) -> list[Receipt[refund]] {
  return for id in ids max 3 { refund(order_id: id, amount: $3) }
}

flow members(order_id: str) -> Facts {
  let r: Receipt[refund] = refund(order_id: order_id, amount: $5.25)
  return { id: r.id, order_id: r.args.order_id, amount: r.args.amount, refund_id: r.result.refund_id,
           refunded: r.result.amount }
}

flow check_claim(claimed: str, actual: str) -> str {
  let r: Receipt[refund] = refund(order_id: actual, amount: $5)
  if r.args.order_id != claimed {
    return "the receipt is for order " + r.args.order_id + ", not " + claimed
  }
  return "refunded " + claimed
}

flow takes_receipt(r: Receipt[refund]) -> str {
  return r.args.order_id
}

flow takes_paid(p: Paid) -> str {
  return p.refund.args.order_id
}

flow maybe_receipt(r: Receipt[refund]?, rs: list[Receipt[refund]]) -> int {
  let own: Receipt[refund] = refund(order_id: "own", amount: $1)
  return len(rs + [own])
}

flow passes_receipt(order_id: str) -> str {
  return takes_receipt(r: refund(order_id: order_id, amount: $5))
}

flow refund_then_confirm(order_id: str) -> Facts {
  let r: Receipt[refund] = refund(order_id: order_id, amount: $5)
  let c = confirm(note: r.args.order_id)
  return { id: r.id, order_id: r.args.order_id, amount: r.args.amount, refund_id: r.result.refund_id,
           refunded: r.result.amount }
}
'''

VOXC = str(pathlib.Path(sys.executable).with_name("voxc"))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def shop(tmp_path, monkeypatch):
    (tmp_path / "shop.py").write_text(SHOP)
    (tmp_path / "prog.vox").write_text(PROGRAM)
    monkeypatch.setenv("SHOP_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.delitem(sys.modules, "shop", raising=False)
    return tmp_path


def counts(folder: pathlib.Path) -> dict:
    path = folder / "counts.json"
    return json.loads(path.read_text()) if path.exists() else {}


def check(text: str):
    return check_source("prog.vox", text)


def plan_of(folder: pathlib.Path, text: str = PROGRAM):
    result = check_source(str(folder / "prog.vox"), text)
    assert result.ok, [d.message for d in result.errors]
    return lower_plan(result)


def options(folder: pathlib.Path, **more) -> RunOptions:
    values = dict(durable=False, state_dir=str(folder / ".vox"), simulate="auto", base_dir=str(folder),
                  env={"VOX_RECEIPT_KEY": "test-key"})
    values.update(more)
    return RunOptions(**values)


def errors(text: str) -> list[tuple[str, str, str]]:
    """(code, message, underlined source text) of each error."""
    result = check(text)
    return [(d.code, d.message, text[d.span.start:d.span.end]) for d in result.errors]


HEAD = PROGRAM.split("type Facts")[0]


# ---- the type checker: `r.id`, `r.args.x`, `r.result` -------------------------------------------------


def test_receipt_members_are_typed_by_the_tool():
    text = HEAD + '''
flow f(r: Receipt[refund]) -> str {
  let id: str = r.id
  let order: str = r.args.order_id
  let amount: money = r.args.amount
  let result: Refunded = r.result
  return id + order + result.refund_id
}
'''
    assert errors(text) == []


def test_a_wrong_member_type_is_a_mismatch():
    assert errors(HEAD + '''
flow f(r: Receipt[refund]) -> int {
  return r.args.amount
}
''') == [("V1015", "expected `int`, found `money`", "r.args.amount")]


def test_an_unknown_receipt_member_or_argument_is_v1006():
    found = errors(HEAD + '''
flow f(r: Receipt[refund]) -> str {
  let a = r.arg
  return r.args.order
}
''')
    assert found == [("V1006", "`Receipt[refund]` has no field `arg`", "arg"),
                     ("V1006", "`Receipt[refund].args` has no field `order`", "order")]
    result = check(HEAD + "flow f(r: Receipt[refund]) -> str {\n  return r.arg\n}\n")
    [d] = result.errors
    assert d.help == "did you mean `args`?"


def test_an_optional_receipt_must_be_checked_first():
    assert [e[0] for e in errors(HEAD + '''
flow f(r: Receipt[refund]?) -> str {
  return r.args.order_id
}
''')] == ["V1016"]
    assert errors(HEAD + '''
flow f(r: Receipt[refund]?) -> str {
  if r != none { return r.args.order_id }
  return "none"
}
''') == []


def test_a_test_can_compare_a_receipt_id_but_not_read_its_call(shop):
    (shop / "t.vox").write_text(PROGRAM + '''
test "compares the receipt's id" {
  flow: handle
  input: { request: "refund 7" }
  mock clerk: [
    call refund(order_id: "7", amount: $5),
    reply { order_id: "7", reply: "done", refund: receipt(refund) }
  ]
  expect: output.refund.id != "" and output.order_id == "7"
}
''')
    done = voxc(shop, "test", "t.vox")
    assert done.returncode == 0 and "1 passed, 0 failed" in done.stdout, done.stdout + done.stderr
    found = errors(PROGRAM + '''
test "reads a receipt's arguments" {
  flow: handle
  input: { request: "refund 7" }
  mock clerk: [
    call refund(order_id: "7", amount: $5),
    reply { order_id: "7", reply: "done", refund: receipt(refund) }
  ]
  expect: output.refund.args.order_id == "7" and output.refund.id != ""
}
''')
    assert [(message, text) for _, message, text in found] == [("a test cannot read the `args` of a receipt", "args")]


# ---- the plan ---------------------------------------------------------------------------------------


def test_the_plan_carries_let_types_and_receipt_members(tmp_path):
    plan = plan_of(tmp_path)
    [let] = [s for s in plan.flows["let_typed"].body if isinstance(s, ir.LetStep)]
    assert let.type == ir.ReceiptType(tool="refund")
    [untyped] = [s for s in plan.flows["untyped"].body if isinstance(s, ir.LetStep)]
    assert untyped.type == ir.RecordType(name="Refunded")
    [par] = plan.flows["in_par"].body[:1]
    assert [b.type for b in par.branches] == [ir.ReceiptType(tool="refund")] * 2
    order = plan.flows["takes_receipt"].body[0].value
    assert (order.name, order.target.name, order.target.type) == (
        "order_id", "args", ir.RecordType(name="Receipt[refund].args"))
    assert order.target.target.type == ir.ReceiptType(tool="refund")
    args = plan.types["Receipt[refund].args"]
    assert isinstance(args, RecordDef)
    assert [(f.name, f.type) for f in args.fields] == [("order_id", ir.PrimType(name="str")),
                                                        ("amount", ir.PrimType(name="money"))]


# ---- the runtime: a `Receipt[t]` binding holds the call's receipt ----------------------------------


@pytest.mark.anyio
async def test_a_typed_let_binds_the_receipt(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("let_typed", {"order_id": "7"})
        assert result.ok, result.error
        [receipt] = result.receipts
        assert result.output == receipt
        entry = rt.receipts.require(result.run_id, receipt, "refund")
        assert entry.args_sha256 == digest({"order_id": "7", "amount": "5"})
        untyped = await rt.run("untyped", {"order_id": "8"})
    assert untyped.output == {"refund_id": "rf_8", "amount": "5"}  # an untyped `let` keeps the result
    assert counts(shop) == {"refund": 2}


@pytest.mark.anyio
async def test_par_branches_bind_their_receipts(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("in_par", {"a": "1", "b": "2"})
        assert result.ok, result.error
        entries = {e.pos: e for e in rt.receipts.entries(result.run_id)}
    x, y = result.output
    assert x == entries["in_par.s0.par0.refund"].id and y == entries["in_par.s0.par1.refund"].id
    assert entries["in_par.s0.par1.refund"].args_sha256 == digest({"order_id": "2", "amount": "2"})


@pytest.mark.anyio
async def test_a_list_item_gives_the_receipt(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("listed", {"a": "5"})
    assert result.ok and result.output == result.receipts and len(result.receipts) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("flow", ["in_for", "returned_for"])
async def test_a_for_body_gives_one_receipt_per_element(shop, flow):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run(flow, {"ids": ["1", "2", "3", "4"]})
        assert result.ok, result.error
        entries = rt.receipts.entries(result.run_id)
    assert result.output == [e.id for e in entries] and len(entries) == 3  # `max 3`
    assert [e.pos for e in entries] == [f"{flow}.s0.for[{i}].s0.refund" for i in range(3)]
    assert [e.args_sha256 for e in entries] == [digest({"order_id": str(i), "amount": "3"}) for i in (1, 2, 3)]


# ---- the runtime: `r.id`, `r.args`, `r.result` --------------------------------------------------------


@pytest.mark.anyio
async def test_receipt_members_read_the_signed_call(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("members", {"order_id": "7"})
        assert result.ok, result.error
        [receipt] = result.receipts
        entry = rt.receipts.require(result.run_id, receipt, "refund")
    out = result.output
    assert out == {"id": receipt, "order_id": "7", "amount": "5.25", "refund_id": "rf_7", "refunded": "5.25"}
    # what the program read is exactly what the ledger signed
    assert entry.args_sha256 == digest({"order_id": out["order_id"], "amount": out["amount"]})
    assert entry.result_sha256 == digest({"refund_id": out["refund_id"], "amount": out["refunded"]})


@pytest.mark.anyio
async def test_a_flow_ties_a_claim_to_the_receipt_of_the_action(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        honest = await rt.run("check_claim", {"claimed": "2", "actual": "2"})
        wrong = await rt.run("check_claim", {"claimed": "2", "actual": "1"})
    assert honest.output == "refunded 2"
    assert wrong.output == "the receipt is for order 1, not 2"


@pytest.mark.anyio
async def test_a_receipt_passed_to_a_flow_reads_the_same_call(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("passes_receipt", {"order_id": "9"})
    assert result.ok and result.output == "9"


SCRIPT_HONEST = [
    {"call": {"tool": "refund", "args": {"order_id": "2", "amount": "19.99"}}},
    {"reply": {"order_id": "2", "reply": "Refunded order 2.", "refund": {"$receipt": "refund"}}},
]
# The refund of order 1, claimed as the refund of order 2: a real receipt, of another action.
SCRIPT_MISMATCH = [
    {"call": {"tool": "refund", "args": {"order_id": "1", "amount": "19.99"}}},
    {"reply": {"order_id": "2", "reply": "Refunded order 2.", "refund": {"$receipt": "refund"}}},
]


@pytest.mark.anyio
async def test_a_gate_ties_an_agent_s_claim_to_the_receipt_of_the_action(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        honest = await rt.run("handle", {"request": "refund order 2"}, scripts={"clerk": SCRIPT_HONEST})
        wrong = await rt.run("handle", {"request": "refund order 2"}, scripts={"clerk": SCRIPT_MISMATCH})
    assert honest.ok, honest.error
    assert honest.output["refund"] == honest.receipts[0]
    assert wrong.status == "failed" and wrong.error["kind"] == "gate"
    assert wrong.receipts  # the refund of order 1 did happen, and is signed: only the claim is refused


@pytest.mark.anyio
async def test_receipts_ok_alone_passes_the_receipt_of_another_action(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("handle_loose", {"request": "refund order 2"}, scripts={"loose_clerk": SCRIPT_MISMATCH})
    assert result.ok, result.error
    assert result.output["order_id"] == "2"  # a real receipt, of the refund of order 1


def test_a_gate_reads_a_receipt_that_is_not_optional():
    assert errors(HEAD + '''
type Maybe = { order_id: str, refund: Receipt[refund]? }
gate g(c: Maybe) {
  check c.refund != none and c.refund.args.order_id == c.order_id else halt
}
''') == [("V1016", "this value may be `none`, so `.args` may fail", "c.refund")]


# ---- the input of a run cannot give a receipt -------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_s_input_cannot_give_a_receipt(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        real = await rt.run("let_typed", {"order_id": "1"})
        assert real.ok
        given = await rt.run("takes_receipt", {"r": real.output})  # a genuine receipt, of another run
        nested = await rt.run("takes_paid", {"p": {"order_id": "1", "refund": real.output}})
        listed = await rt.run("maybe_receipt", {"r": None, "rs": [real.output]})
        empty = await rt.run("maybe_receipt", {"r": None, "rs": []})
    assert given.error["kind"] == "input"
    assert given.error["message"] == (
        "input $.r: a receipt can only come from calling `refund` in this run, not from its input")
    assert nested.error["kind"] == "input" and "$.p.refund: a receipt can only come from" in nested.error["message"]
    assert listed.error["kind"] == "input" and "$.rs[0]" in listed.error["message"]
    assert empty.ok and empty.output == 1  # no receipt given: nothing to refuse
    assert counts(shop) == {"refund": 2}


# ---- on replay, and against the ledger --------------------------------------------------------------


def voxc(folder: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SHOP_COUNTS": str(folder / "counts.json"), "VOX_RECEIPT_KEY": "test-key",
           "HOME": str(folder)}
    return subprocess.run([VOXC, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def start_waiting(folder: pathlib.Path, run_id: str) -> None:
    waiting = voxc(folder, "run", "prog.vox", "--flow", "refund_then_confirm", "--input", '{"order_id": "4"}',
                   "--run-id", run_id)
    assert waiting.returncode == 4, waiting.stderr
    assert counts(folder) == {"refund": 1}


def test_a_resumed_run_rebuilds_what_its_receipts_sign(shop):
    start_waiting(shop, "r1")
    approved = voxc(shop, "approve", "r1", "--json")
    assert approved.returncode == 0, approved.stderr
    out = json.loads(approved.stdout)["output"]
    assert (out["order_id"], out["refund_id"]) == ("4", "rf_4")
    assert counts(shop) == {"refund": 1, "confirm": 1}  # the refund was replayed from the journal, not repeated
    assert voxc(shop, "receipts", "verify", "r1").returncode == 0


def test_a_journal_edited_after_signing_is_caught_when_the_receipt_is_read(shop):
    start_waiting(shop, "r2")
    con = sqlite3.connect(str(shop / ".vox" / "state.sqlite"), isolation_level=None)
    [(text,)] = con.execute("SELECT value FROM vox_step WHERE run_id = 'r2' AND step = "
                            "'refund_then_confirm.s0.refund'").fetchall()
    recorded = json.loads(text)
    recorded["value"]["refund_id"] = "rf_forged"
    con.execute("UPDATE vox_step SET value = ? WHERE run_id = 'r2' AND step = 'refund_then_confirm.s0.refund'",
                (json.dumps(recorded),))
    con.close()
    approved = voxc(shop, "approve", "r2", "--json")
    assert approved.returncode == 1
    outcome = json.loads(approved.stdout)
    assert outcome["error"]["kind"] == "fabricated_receipt"
    assert "its result differ from those signed in the ledger" in outcome["error"]["message"]


def test_doctests():
    import doctest

    from vox.compiler.hir import types
    from vox.runtime.executor import values

    assert doctest.testmod(types).failed == 0 and doctest.testmod(values).failed == 0


# ---- labels through receipt members ------------------------------------------------------------------

LABELLED = '''
label pii
provider open = sim { clearance: [public] }
model m = open/"x" { context: 8_000, max_output: 100, price: { input: $1, output: $2 } }
type Charged = { card: str @pii, note: str }
tool charge(email: str @pii, amount: money) -> Charged { effect: write, idempotent: true, clearance: [public, pii] }
tool mask(email: str) -> str { effect: external, idempotent: true, clearance: [public, pii], declassifies: [pii] }
agent say(x: str) -> str { model: m, budget: { steps: 1 }, prompt: "{x}" }
'''


def label_codes(body: str) -> list[str]:
    return [d.code for d in check(LABELLED + body).errors]


def test_a_receipt_s_arguments_carry_what_the_call_was_given():
    assert label_codes('''
flow f(e: str @pii) -> str {
  let r: Receipt[charge] = charge(email: e, amount: $1)
  return say(x: r.args.email)
}
''') == ["V3001"]
    assert label_codes('''
flow f(e: str) -> str {
  let r: Receipt[charge] = charge(email: e, amount: $1)
  return say(x: r.result.note)
}
''') == []


@pytest.mark.parametrize("body", [
    'flow f(e: str) -> str {\n  let r: Receipt[charge] = charge(email: e, amount: $1)\n  return say(x: r.result.card)\n}\n',
    'flow f(r: Receipt[charge]) -> str {\n  return say(x: r.args.email)\n}\n',
    'flow f(r: Receipt[charge]) -> str {\n  return say(x: r.result.card)\n}\n',
    'flow f(e: str @pii) -> str {\n  let r: Receipt[mask] = mask(email: e)\n  return say(x: r.args.email)\n}\n',
], ids=["declared-result-field", "declared-parameter", "param-result-field", "declassified-in-result-only"])
def test_the_labels_a_tool_declares_reach_through_its_receipt(body):
    assert label_codes(body) == ["V3001"]
