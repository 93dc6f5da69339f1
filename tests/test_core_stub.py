"""The type stub python/gradbasis/_core.pyi describes the compiled module gradbasis._core.

Read with ``ast`` and compared by introspection: every public name of the runtime module (module
level, each class's own public methods and properties, each enum's members) is declared in the
stub and every public name of the stub exists at runtime, as the same sort of thing (function,
class, property, method, enum member, module attribute); where pybind11 states a signature
(``__text_signature__`` or the first line of the docstring) the parameter names, and which of
them have defaults, agree. So this test fails as soon as a binding is added, removed or renamed
in cpp/bindings without the stub following. ``python -m mypy.stubtest gradbasis._core
--allowlist stubtest-allowlist.txt`` checks the same pair with mypy's own rules.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from gradbasis import _core

STUB = Path(_core.__file__).resolve().parent / "_core.pyi"
if not STUB.exists():  # an installed copy without the stub: read the source tree's
    STUB = Path(__file__).resolve().parents[1] / "python" / "gradbasis" / "_core.pyi"


def _public(name: str) -> bool:
    return not name.startswith("_")


def _stub_module() -> ast.Module:
    return ast.parse(STUB.read_text(), filename=str(STUB))


def _is_property(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def _is_classvar(node: ast.AnnAssign) -> bool:
    ann = node.annotation
    return (
        isinstance(ann, ast.Subscript)
        and isinstance(ann.value, ast.Name)
        and (ann.value.id == "ClassVar")
    )


def _declared(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names a stub body declares (functions, classes, annotated or assigned names)."""
    out: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node
    return out


def _stub_kind(node: ast.stmt) -> str:
    if isinstance(node, ast.ClassDef):
        return "class"
    if isinstance(node, ast.FunctionDef):
        return "property" if _is_property(node) else "function"
    if isinstance(node, ast.AnnAssign) and _is_classvar(node):
        return "member"
    return "attribute"


def _runtime_kind(owner: object, value: object) -> str:
    if isinstance(value, type):
        return "class"
    if isinstance(value, property):
        return "property"
    if isinstance(owner, type) and isinstance(value, owner):
        return "member"  # an enum member: an instance of its own class
    if callable(value):
        return "function"
    return "attribute"


def _stub_parameters(node: ast.FunctionDef) -> list[tuple[str, bool]]:
    """(name, has a default) of every parameter but self, in order."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    out = list(zip((a.arg for a in positional), defaults, strict=True))
    out += [(a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    return [(name, default) for name, default in out if name != "self"]


def _split_top_level(text: str) -> list[str]:
    """Split a parameter list at the commas outside brackets and string literals."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _runtime_parameters(name: str, value: object) -> list[tuple[str, bool]] | None:
    """(name, has a default) of every parameter but self from pybind11's signature, or None
    where it gives none (or several: an overloaded function)."""
    text = getattr(value, "__text_signature__", None)
    if text:
        body = text[text.index("(") + 1 : text.rindex(")")]
    else:
        first = (getattr(value, "__doc__", None) or "").lstrip().splitlines()
        if not first or not first[0].startswith(f"{name}("):
            return None
        line = first[0]
        depth = 0
        for end in range(len(name), len(line)):  # the ")" that closes the parameter list
            depth += {"(": 1, ")": -1}.get(line[end], 0)
            if depth == 0:
                break
        body = line[len(name) + 1 : end]
    out = []
    for part in _split_top_level(body):
        if part in ("/", "*") or part.startswith("**") or part.startswith("*"):
            continue
        pname = part.split("=")[0].split(":")[0].strip()
        if pname not in ("self", "$self"):
            out.append((pname, "=" in part))
    return out


def _runtime_members(owner: object) -> dict[str, object]:
    """Public names the module or class defines itself (not inherited from pybind11_object)."""
    return {k: v for k, v in vars(owner).items() if _public(k)}


def _compare(owner: object, body: list[ast.stmt], where: str) -> list[str]:
    """Mismatches between a runtime module or class and its stub body, as readable lines."""
    problems = []
    stub = {k: v for k, v in _declared(body).items() if _public(k)}
    runtime = _runtime_members(owner)
    for name in sorted(runtime.keys() - stub.keys()):
        problems.append(f"{where}{name} exists at runtime but the stub does not declare it")
    for name in sorted(stub.keys() - runtime.keys()):
        problems.append(f"{where}{name} is declared in the stub but missing at runtime")
    for name in sorted(stub.keys() & runtime.keys()):
        node, value = stub[name], runtime[name]
        stub_kind, runtime_kind = _stub_kind(node), _runtime_kind(owner, value)
        if stub_kind != runtime_kind:
            problems.append(
                f"{where}{name} is a {runtime_kind} at runtime, a {stub_kind} in the stub"
            )
        elif isinstance(node, ast.ClassDef):
            assert isinstance(value, type)
            problems += _compare(value, node.body, f"{where}{name}.")
            problems += _compare_signature(value, "__init__", _declared(node.body), where + name)
        elif stub_kind == "function":
            problems += _compare_signature(owner, name, stub, where.rstrip("."))
    return problems


def _compare_signature(owner: object, name: str, stub: dict, where: str) -> list[str]:
    value = vars(owner).get(name)
    node = stub.get(name)
    if value is None or not isinstance(node, ast.FunctionDef):
        return []
    expected = _runtime_parameters(name, value)
    if expected is None:
        return []
    declared = _stub_parameters(node)
    if declared == expected:
        return []
    full = f"{where}.{name}" if where else name
    return [f"{full}: runtime parameters {expected}, stub parameters {declared}"]


def test_the_stub_parses_and_declares_the_module():
    tree = _stub_module()
    assert _declared(tree.body), f"{STUB} declares nothing"


def test_stub_and_runtime_declare_the_same_names_and_signatures():
    problems = _compare(_core, _stub_module().body, "")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "name", sorted(k for k, v in vars(_core).items() if isinstance(v, type) and _public(k))
)
def test_enum_members_match(name):
    """An enum's members in the stub (ClassVar attributes of its own type) are __members__."""
    cls = getattr(_core, name)
    node = _declared(_stub_module().body)[name]
    assert isinstance(node, ast.ClassDef)
    declared = {
        k
        for k, v in _declared(node.body).items()
        if isinstance(v, ast.AnnAssign)
        and _is_classvar(v)
        and isinstance(v.annotation, ast.Subscript)
        and isinstance(v.annotation.slice, ast.Name)
        and v.annotation.slice.id == name
    }
    members = set(getattr(cls, "__members__", {}))
    assert declared == members, (
        f"{name}: stub members {sorted(declared)}, runtime {sorted(members)}"
    )


def test_pybind11_signatures_are_read():
    """The signature reader sees pybind11's docstrings (else the comparison above is empty)."""
    params = _runtime_parameters("induced_minimum", _core.induced_minimum)
    assert params is not None and params[0] == ("B", False) and params[-1] == ("n_threads", True)
    assert inspect.isclass(_core.Graph)
    params = _runtime_parameters("gram", vars(_core.Graph)["gram"])
    assert params is not None and [p for p, _ in params][:3] == ["theta", "X1", "X2"]
