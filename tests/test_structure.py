"""The structure drawn in README's Layout holds: no import circles, and the lower layers reach up to none.

Imports are read from the source (module level and inside functions alike; ``if TYPE_CHECKING:``
blocks excepted, since they run only under a type checker).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mlxtune"
#: Modules that only compute numbers, put them into words or write bytes: none may import a module
#: that builds results, sweeps, renders or fronts. (``measure`` defines the one record shape, which
#: they all read, so it is not among the upper ones.)
LOWER = ("units", "files", "store", "stats", "decision", "view", "sampler", "runner")
UPPER = ("result", "sweep", "report", "plots", "compare", "cli", "widgets", "magics")


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE).parts
        name = ".".join(("mlxtune", *parts)).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    found, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlxtune"):
            for alias in node.names:
                inner = f"{node.module}.{alias.name}"
                found.add(inner if inner in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mlxtune"))
        pending.extend(ast.iter_child_nodes(node))
    return found


def graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    return {name: {d for d in imports(tree, known) if d in known and d != name}
            for name, tree in trees.items()}


def test_no_module_imports_itself_through_others() -> None:
    edges = graph()
    cycles = []
    for start in edges:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in path and len(path) < len(edges):
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, cycles[:5]


def test_numbers_words_and_bytes_reach_up_to_nothing() -> None:
    edges = graph()
    upward = {name: sorted(d for d in edges[name] if d.removeprefix("mlxtune.") in UPPER)
              for name in (f"mlxtune.{low}" for low in LOWER)}
    assert upward == {f"mlxtune.{low}": [] for low in LOWER}
