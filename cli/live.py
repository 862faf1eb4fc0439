"""The live view of `voxc run` on a terminal: each step, spend against the caps, receipts.

It is fed the runtime's events (dicts with an ``event`` kind and a ``step`` name) and redraws a
small table; on a pipe, `--verbose` prints one line per finished step instead.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vox.compiler.units import format_money, format_tokens

_ICONS = {"running": "…", "done": "✓", "failed": "✗", "fallback": "↪"}


class LiveView:
    def __init__(self, stream: TextIO, caps: dict[str, int]):
        self.console = Console(file=stream, stderr=True)
        self.caps = caps  # the flow's caps, as the budget ledger names them
        self.steps: dict[str, dict] = {}
        self.spent = {"cost_micros": 0, "tokens": 0}
        self.receipts: list[str] = []
        self.live = Live(self.render(), console=self.console, refresh_per_second=8, transient=False)

    def __enter__(self) -> "LiveView":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def __call__(self, event: dict) -> None:
        kind, step = event["event"], event.get("step", "")
        if kind in ("agent_start", "tool_start"):
            self.steps[step] = {"what": event.get("agent") or event.get("tool"), "state": "running", "cost": 0}
        elif kind == "model_end":
            self.spent["cost_micros"] += event.get("cost", 0)
            usage = event.get("usage", {})
            self.spent["tokens"] += usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
            owner = step.rsplit("/model[", 1)[0]
            if owner in self.steps:
                self.steps[owner]["cost"] += event.get("cost", 0)
        elif kind in ("agent_end", "tool_end") and step in self.steps:
            self.steps[step]["state"] = "done"
            if event.get("receipt"):
                self.receipts.append(event["receipt"])
                self.steps[step]["receipt"] = event["receipt"]
        elif kind == "fallback" and step in self.steps:
            self.steps[step]["note"] = f"{event.get('failed')} failed → {event.get('model')}"
        self.live.update(self.render())

    def render(self) -> Group:
        table = Table(box=None, show_header=False, pad_edge=False)
        for step, info in list(self.steps.items())[-12:]:
            extra = info.get("receipt") or info.get("note") or ""
            cost = format_money(info["cost"]) if info["cost"] else ""
            table.add_row(_ICONS.get(info["state"], "?"), step, cost, extra)
        spend = f"spent {format_money(self.spent['cost_micros'])}"
        if "cost_micros" in self.caps:
            spend += f" of {format_money(self.caps['cost_micros'])}"
        spend += f" · {format_tokens(self.spent['tokens'])} tokens"
        if "tokens" in self.caps:
            spend += f" of {format_tokens(self.caps['tokens'])}"
        if self.receipts:
            spend += f" · {len(self.receipts)} receipt{'s' * (len(self.receipts) > 1)}"
        return Group(table, Text(spend, style="dim"))
