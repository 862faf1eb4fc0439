"""What "the same program" means for the formatter: equal ASTs once layout is set aside.

AST equality already ignores spans. A string's ``raw`` source text is layout too: the
formatter re-indents triple-quoted prompts, which changes ``raw`` but not ``value``.

>>> from vox.compiler.syntax import ast
>>> same_meaning(ast.StrLit("hi", '\"\"\"\\n  hi\\n\"\"\"'), ast.StrLit("hi", '\"\"\"\\n    hi\\n  \"\"\"'))
True
>>> same_meaning(ast.Name("a"), ast.Name("b"))
False
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from vox.compiler.syntax import ast

LAYOUT_FIELDS = {"span"}
LAYOUT_FIELDS_OF = {ast.StrLit: {"span", "raw"}}


def same_meaning(a: Any, b: Any) -> bool:
    """Whether two AST subtrees differ at most in layout (spans and string source text).

    Iterative, so that it copes with expressions as deep as the parser accepts.
    """
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if isinstance(x, tuple) and isinstance(y, tuple):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y))
        elif is_dataclass(x) and not isinstance(x, type):
            if type(x) is not type(y):
                return False
            skip = LAYOUT_FIELDS_OF.get(type(x), LAYOUT_FIELDS)
            pending.extend((getattr(x, f.name), getattr(y, f.name)) for f in fields(x) if f.name not in skip)
        elif type(x) is not type(y) or x != y:
            return False
    return True
