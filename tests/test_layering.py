"""Architecture rules that code review alone would not keep."""

from __future__ import annotations

import ast
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_compiler_never_imports_the_runtime_or_network_libraries():
    forbidden = ("vox.runtime", "httpx", "anyio", "aiohttp", "dbos", "vox.lsp", "vox.cli")
    for path in (ROOT / "compiler").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(forbidden), f"{path.relative_to(ROOT)} imports {name}"


def test_only_the_syntax_layer_imports_lark():
    for path in (ROOT / "compiler").rglob("*.py"):
        if path.parent.name == "syntax":
            continue
        for name in _imports(path):
            assert not name.startswith("lark"), f"{path.relative_to(ROOT)} imports {name}"


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            dotted = package + ("." + ".".join(rel.parts) if rel.parts else "")
            assert dotted in listed, f"{dotted} ({init.parent.relative_to(ROOT)}) is missing from pyproject packages"


def test_grammar_ships_as_package_data():
    from importlib import resources

    text = resources.files("vox.lang").joinpath("grammar/vox.lark").read_text()
    assert "agent_decl" in text


# Compiler modules the runtime shares so that a thing is done one way on both sides: money is
# written and cost rounded as the compiler's bounds do it (units), a tool's binding is
# imported as pre-flight imports it (bindings), and `redact` lowers the labels its detectors cover
# (redaction). They are leaves: they import nothing of the compiler, so sharing them brings the
# runtime none of the parser, checker or analyses.
SHARED_WITH_THE_RUNTIME = ("vox.compiler.units", "vox.compiler.bindings", "vox.compiler.requests",
                           "vox.compiler.redaction", "vox.compiler.signals")


def test_the_runtime_reads_only_the_plan():
    """The plan is the contract: the runtime never imports the parser, checker or analyses
    (runtime/program.py, the embedding API that compiles a file first, is the one exception)."""
    for path in (ROOT / "runtime").rglob("*.py"):
        if path.name == "program.py" and path.parent.name == "runtime":
            continue
        for name in _imports(path):
            if name.startswith("vox.compiler"):
                assert name.startswith("vox.compiler.plan") or name in SHARED_WITH_THE_RUNTIME, \
                    f"{path.relative_to(ROOT)} imports {name}"


def test_the_modules_shared_with_the_runtime_are_leaves():
    for name in SHARED_WITH_THE_RUNTIME:
        path = ROOT / "compiler" / (name.rsplit(".", 1)[1] + ".py")
        for imported in _imports(path):
            assert not imported.startswith("vox."), f"{path.relative_to(ROOT)} imports {imported}"


def test_the_runtime_never_imports_the_cli_or_the_language_server():
    for path in (ROOT / "runtime").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(("vox.cli", "vox.lsp")), f"{path.relative_to(ROOT)} imports {name}"
