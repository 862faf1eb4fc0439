"""What "the same program" means for the formatter: equal ASTs once layout is set aside.

AST equality already ignores spans. A string's ``raw`` source text is layout too: the
formatter re-indents triple-quoted prompts, which changes ``raw`` but not ``value``.

>>> from vox.compiler.syntax import ast
>>> same_meaning(ast.StrLit("hi", '\"\"\"\\n  hi\\n\"\"\"'), ast.StrLit("hi", '\"\"\"\\n    hi\\n  \"\"\"'))
True
"""

from __future__ import annotations

from typing import Any

from vox.compiler.syntax import ast


def without_layout(node: Any) -> Any:
    """A copy of an AST subtree with every string's source text blanked (values kept)."""
    if isinstance(node, tuple):
        return tuple(without_layout(n) for n in node)
    if isinstance(node, ast.StrLit):
        return ast.StrLit(node.value, "", node.span)
    fields = getattr(type(node), "__dataclass_fields__", None)
    if fields is None or isinstance(node, ast.Comment):
        return node
    return type(node)(**{name: without_layout(getattr(node, name)) for name in fields})


def same_meaning(a: Any, b: Any) -> bool:
    """Whether two AST subtrees differ at most in layout (spans and string source text)."""
    return without_layout(a) == without_layout(b)
