"""Importing a tool's `python("module:function")` binding, the one way pre-flight and the runtime do.

The module is looked for in the program's folder first, then on the Python path. Whatever the
user's module raises while importing is caught and described, and what it prints is swallowed
(it would corrupt `--format json` or `voxc run --json`): a binding that does not load is a
problem to report, pre-flight's V6001/V6002 or a tool call that fails, never a crash.

The runtime imports this module, so it imports nothing of the compiler.

>>> loaded = load_binding("os.path:join.nope", None)
>>> loaded.failed, loaded.problem
('attribute', '`os.path` has no `join.nope`')
>>> load_binding("os.path:join", None).function("a", "b") == os.path.join("a", "b")
True
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Literal


@dataclass(frozen=True, slots=True)
class LoadedBinding:
    """What importing ``target`` found: the ``function``, or which step ``failed`` and why."""

    target: str
    module: ModuleType | None  # None when the module did not import
    function: Callable[..., Any] | None  # None unless it loaded
    failed: Literal["", "import", "attribute", "callable"] = ""
    problem: str = ""  # why, in words; "" when it loaded

    @property
    def module_name(self) -> str:
        return self.target.partition(":")[0]

    @property
    def attr_path(self) -> str:
        return self.target.partition(":")[2]


def load_binding(target: str, folder: str | None) -> LoadedBinding:
    """Import the `module:attr.path` binding ``target``, with ``folder`` (if given) first on the
    module search path; never raises for what the user's module does."""
    module_name, _, attr_path = target.partition(":")
    module, problem = import_module_from(module_name, folder)
    if module is None:
        return LoadedBinding(target, None, None, "import", problem)
    value: object = module
    for part in attr_path.split("."):
        if not hasattr(value, part):
            return LoadedBinding(target, module, None, "attribute", f"`{module_name}` has no `{attr_path}`")
        value = getattr(value, part)
    if not callable(value):
        problem = f"`{target}` is a {type(value).__name__}, not a function"
        return LoadedBinding(target, module, None, "callable", problem)
    return LoadedBinding(target, module, value)


def import_module_from(module_name: str, folder: str | None) -> tuple[ModuleType | None, str]:
    """Import ``module_name`` with ``folder`` first on the search path; (module, "") or (None, why)."""
    if folder is not None:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module(module_name), ""
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            return None, f"no module named `{e.name}`"
        return None, f"importing `{module_name}` raised ModuleNotFoundError: {e}"
    except (Exception, SystemExit) as e:  # user code: anything can happen while it imports
        line = _user_line(e)
        return None, f"importing `{module_name}` raised {type(e).__name__}: {e}" + (f" ({line})" if line else "")
    finally:
        if folder is not None:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)  # the first occurrence: the one inserted above


def _user_line(e: BaseException) -> str:
    """`file:line` of the innermost frame of the traceback, to say where the user's code failed."""
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return ""
    return f"{os.path.basename(last.tb_frame.f_code.co_filename)}:{last.tb_lineno}"
