"""Embedding Vox in Python: load a program (or a plan) and call its flows, sync or async.

>>> # program = load("examples/hello.vox")
>>> # program.run("hello", {"name": "Ada"}).output
>>> # await program.run_async("hello", {"name": "Ada"})

This is the one module of the runtime that reads source: it compiles with the same compiler API
as `voxc check`, and refuses a program with errors (:class:`ProgramError` lists them, rendered).
Everything else in the runtime reads only the plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import anyio

from vox.compiler.plan import Plan, load_plan
from vox.runtime.host import RunOptions, RunResult, Runtime


class ProgramError(Exception):
    """The program does not compile; the message holds its diagnostics as `voxc check` prints them."""


@dataclass(frozen=True)
class Program:
    plan: Plan
    options: RunOptions

    async def run_async(self, flow: str, inputs: dict | None = None, **kwargs) -> RunResult:
        async with Runtime(self.plan, self.options) as rt:
            return await rt.run(flow, inputs or {}, **kwargs)

    def run(self, flow: str, inputs: dict | None = None, **kwargs) -> RunResult:
        return anyio.run(lambda: self.run_async(flow, inputs, **kwargs))

    def with_options(self, **changes) -> "Program":
        return replace(self, options=replace(self.options, **changes))


def load(path: str, options: RunOptions | None = None) -> Program:
    """Compile the `.vox` file at ``path`` (or read a plan, for a `.json` file)."""
    options = options or RunOptions()
    if options.base_dir is None:
        options = replace(options, base_dir=os.path.dirname(os.path.abspath(path)))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return Program(load_plan(text), options)
    from vox.compiler.api import check_source
    from vox.compiler.diagnostics.render import render_text
    from vox.compiler.plan import lower_plan

    result = check_source(path, text)
    if not result.ok:
        raise ProgramError("\n\n".join(render_text(d, result.source) for d in result.errors))
    return Program(lower_plan(result), options)
