"""Size and shape of the package's layout: modules per package, the largest module, the longest
function and the longest chain of imports between the package's modules (relative imports,
lazy ones included; the compiled core counts as a leaf).

    python scripts/layout_metrics.py [PACKAGE_DIR]     # default: python/gradbasis
"""

from __future__ import annotations

import ast
import collections
import sys
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{target}.{alias.name}" if target else alias.name
                    if sub in mods:
                        deps.add(sub)
                    elif not sub.endswith("_core"):  # the compiled core: a leaf
                        deps.add(target)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path that visits no module twice (a cycle is cut where it closes)."""
    best: dict[str, list[str]] = {}

    def walk(node: str, stack: tuple[str, ...]) -> list[str]:
        if node in best:
            return best[node]
        chain = [node]
        for nxt in sorted(graph[node]):
            if nxt not in stack:
                sub = walk(nxt, (*stack, node))
                if len(sub) + 1 > len(chain):
                    chain = [node, *sub]
        best[node] = chain
        return chain

    return max((walk(n, ()) for n in graph), key=len)


def main(root: Path) -> None:
    mods = modules(root)
    per_package = collections.Counter(
        (n if p.name == "__init__.py" else n.rpartition(".")[0]) or root.name
        for n, p in mods.items()
    )
    sizes = {n: len(p.read_text().splitlines()) for n, p in mods.items()}
    functions = [
        (node.end_lineno - node.lineno + 1, f"{n}.{node.name}")
        for n, p in mods.items()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno
    ]
    largest = max(sizes, key=sizes.__getitem__)
    chain = longest_chain(import_graph(mods))
    print(f"modules: {len(mods)}; per package: {dict(sorted(per_package.items()))}")
    print(f"largest module: {largest or root.name} ({sizes[largest]} lines)")
    print("longest function: {1} ({0} lines)".format(*max(functions)))
    print(
        f"longest import chain: {len(chain)} modules: {' -> '.join(c or root.name for c in chain)}"
    )


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).parents[1] / "python" / "gradbasis"
    )
