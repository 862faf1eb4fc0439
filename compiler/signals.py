"""The runtime signals a gate may read: one registry for the checker, the analyses and the runtime.

Each :class:`Signal` says what the language needs (its parameters and result type), what the
analyses need (the model capability it requires, the extra model calls it makes, the model it
sends the answer to) and names the runtime's implementation (``Signals.<name>`` in
``runtime/executor/agent.py``, which a test holds to this table). Adding a signal is one entry
here and one method there.

>>> SIGNALS["consistency"].params[0].name, SIGNALS["consistency"].needs, SIGNALS["judge"].judge
('n', 'sampling', 'model')
>>> sorted(name for name, s in SIGNALS.items() if not s.called)
['confidence', 'observations', 'receipts_ok']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["int", "str", "model", "list[str]", "float", "bool"]


@dataclass(frozen=True)
class SignalParam:
    name: str
    kind: Kind  # `model`: the name of a declared model
    least: int | None = None  # an `int` that must be written as a literal at least this (V5003)
    why: str = ""  # why it must be at least ``least``


@dataclass(frozen=True)
class Signal:
    name: str
    params: tuple[SignalParam, ...]
    result: Kind
    called: bool  # read as a call (`entropy(window: 8)`), or as a name (`confidence`)
    needs: str | None = None  # a capability every model of the agent's chain must have
    samples: str | None = None  # the parameter n: the signal draws n - 1 extra outputs of the agent's model
    judge: str | None = None  # the parameter naming a model that is sent the answer (one call per read)
    alternatives: bool = False  # reads the top log-probabilities of each token (requests ask for them)
    doc: str = ""

    def param(self, name: str) -> SignalParam | None:
        return next((p for p in self.params if p.name == name), None)


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("confidence", (), "float", False, needs="logprobs",
           doc="exp of the mean token log-probability of the answer (0 when the provider gave none)"),
    Signal("entropy", (SignalParam("window", "int", 1, "an entropy window has at least one token"),), "float", True,
           needs="logprobs", alternatives=True,
           doc="the highest mean token entropy over any `window` consecutive tokens (infinite without log-probabilities)"),
    Signal("consistency", (SignalParam("n", "int", 2, "`consistency` compares at least two outputs"),), "float",
           True, needs="sampling", samples="n",
           doc="the share of `n` outputs (this answer and n - 1 fresh samples) equal to this answer"),
    Signal("judge", (SignalParam("model", "model"), SignalParam("rubric", "str")), "bool", True, judge="model",
           doc="whether `model`, given the rubric and the answer, says the answer passes"),
    Signal("grounded", (SignalParam("text", "str"), SignalParam("sources", "list[str]")), "bool", True,
           doc="whether every number and id-like word of `text` (an amount, a date, an order number) occurs in `sources`"),
    Signal("receipts_ok", (), "bool", False,
           doc="whether every receipt the answer names was signed by this run for its tool"),
    Signal("observations", (), "list[str]", False,
           doc="the agent's rendered prompt and the results of its tool calls, in order"),
)}

NEEDS: dict[str, tuple[str, ...]] = {}  # capability → the signals that need it
for _s in SIGNALS.values():
    if _s.needs:
        NEEDS.setdefault(_s.needs, ())
        NEEDS[_s.needs] += (_s.name,)
del _s


def extra_calls(name: str, int_args: dict[str, int]) -> int:
    """Model calls of the agent that one read of signal ``name`` makes besides its turn: n - 1
    samples for a `samples` signal, one call of the judge for a `judge` signal."""
    signal = SIGNALS.get(name)
    if signal is None:
        return 0
    if signal.judge is not None:
        return 1
    if signal.samples is not None and signal.samples in int_args:
        return max(int_args[signal.samples] - 1, 0)
    return 0
