"""The package's house plan, checked from the source: imports only go down the layers, there is
no import cycle, no module imports the package ``__init__``, no module is named like a function
its package re-exports, and no module grows past a readable size. docs/architecture.md describes
the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "gradbasis"

#: Layer of each module (by dotted prefix, longest prefix wins); imports go to the same layer
#: or a lower one. Same-layer imports are allowed but may not form a cycle.
LAYERS = {
    "_core": 0,
    "_version": 0,
    "errors": 0,
    "_numerics": 0,
    "verdict": 0,
    "_options": 1,
    "_memory": 1,
    "_validation": 1,
    "_progress": 1,
    "losses": 2,
    "models": 2,
    "objective": 3,
    "optimize": 3,
    "datasets": 3,
    "solve": 4,
    "theory": 5,
    "sweep": 6,
    "report": 5,  # the pages of a certificate: Theorem1Result.save_report writes them
    "plots": 7,
    "cli": 8,
    "torch": 2,  # TorchModel is a model (layer 2); the interop sits beside it
    "__main__": 9,
    "": 9,  # the package __init__: the public names
}

#: A module longer than this is split by responsibility (physical lines, docstrings included).
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
COMPILED = {"_core"}  # the C++ extension: a module without a .py source


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _layer(name: str) -> int:
    best = ""
    for prefix in LAYERS:
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best]


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the module, lazy ones included. ``from X
    import y`` counts as an import of X.y when that is a module, else of X."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "gradbasis" or alias.name.startswith("gradbasis."):
                    found.append((alias.name.removeprefix("gradbasis").lstrip("."), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and (
                node.module == "gradbasis" or node.module.startswith("gradbasis.")
            ):
                target = node.module.removeprefix("gradbasis").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.append((sub if sub in MODULES or sub in COMPILED else target, node.lineno))
    return found


GRAPH = {name: sorted({m for m, _ in _imports(name) if m != name}) for name in MODULES}


def test_the_layers_are_known():
    assert all(_layer(name) is not None for name in MODULES)
    assert {"models", "solve", "theory", "sweep", "plots", "cli"} <= {
        n for n in MODULES if _is_package(n)
    }


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_go_down(name):
    upward = [
        f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)}) on line {line}"
        for target, line in _imports(name)
        if target != name and _layer(target) > _layer(name)
    ]
    assert not upward, upward


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n))
def test_no_module_imports_the_package_init(name):
    offending = [line for target, line in _imports(name) if target == ""]
    assert not offending, f"{name} imports names from gradbasis/__init__.py on lines {offending}"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in GRAPH.get(node, []):
            if nxt not in MODULES:  # the compiled core imports nothing of ours
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in MODULES:
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_readable(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines; split it by responsibility"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _is_package(n)))
def test_no_module_is_shadowed_by_a_reexported_name(name):
    """``from .sub import sub`` in a package hides the module ``pkg.sub`` behind a function."""
    children = {m.rpartition(".")[2] for m in MODULES if m and m.rpartition(".")[0] == name}
    clashes = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            source = ".".join(filter(None, [name, node.module]))  # level 1 inside a package
            for alias in node.names:
                shown = alias.asname or alias.name
                is_the_module = f"{source}.{alias.name}".lstrip(".") == f"{name}.{shown}".lstrip(
                    "."
                )
                if shown in children and not is_the_module:
                    clashes.append(f"{shown} (from {source or 'gradbasis'})")
    assert not clashes, f"{name or 'gradbasis'} re-exports names that hide its modules: {clashes}"


#: Packages whose __init__ is more than re-exports: the command line's parser and ``main`` are
#: ``gradbasis.cli`` itself (the ``gradbasis`` script's entry point is ``gradbasis.cli:main``).
INIT_WITH_CODE = {"cli"}


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if n and _is_package(n) and n not in INIT_WITH_CODE)
)
def test_subpackage_inits_only_reexport(name):
    tree = ast.parse(MODULES[name].read_text())
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    allowed = (ast.Import, ast.ImportFrom)
    for node in body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "__all__"
        ]:
            continue
        assert isinstance(node, allowed), (
            f"{MODULES[name]} line {node.lineno}: a subpackage __init__ holds only re-exports"
        )
