"""The layers of README's Layout (and DESIGN.md) hold: every import of the package points down or
sideways, never up, and no module imports itself through others.

Every import counts: at module level, inside functions and under ``if TYPE_CHECKING:``. The only
upward imports are the named delegations below: a result's convenience methods (and a snapshot's
display), each a body of one import and one ``return`` handing the object to the layer that draws it
(as pandas' ``DataFrame.to_html`` hands itself to its formatters), and the types those methods return.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlxtune"

#: Bottom to top. A module may import its own layer and the layers below it.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": ("units", "record", "files"),
    "io": ("store",),
    "analysis": ("stats", "decision", "gates", "result", "fleet_result", "comparison"),
    "mlx": ("_mlx", "memory", "sampler", "environment"),
    "workloads": ("workloads", "workloads.chat", "workloads.lm", "workloads.models", "workloads.named",
                  "workloads.synthetic"),
    "engine": ("measure", "paired", "runner", "sweep", "remote", "fleet", "history"),
    "words": ("view", "advice"),
    "presentation": ("present", "plots", "report", "compare"),
    "front ends": ("magics", "widgets", "cli", "_argtypes", "__init__", "__main__"),
}

#: (module, method) -> the module it delegates to: the only imports that reach up.
DELEGATIONS: dict[tuple[str, str], str] = {
    ("result", "SweepResult.summary"): "present",
    ("result", "SweepResult.recommend"): "advice",
    ("result", "SweepResult.plot"): "plots",
    ("result", "SweepResult.to_html"): "report",
    ("result", "SweepResult.to_markdown"): "report",
    ("result", "SweepResult.__str__"): "present",
    ("result", "SweepResult._repr_html_"): "report",
    ("fleet_result", "FleetResult.recommend"): "advice",
    ("fleet_result", "FleetResult.plot"): "plots",
    ("fleet_result", "FleetResult.to_html"): "report",
    ("fleet_result", "FleetResult.to_markdown"): "report",
    ("fleet_result", "FleetResult._repr_html_"): "report",
    ("memory", "Snapshot._text"): "present",
    ("memory", "Snapshot._repr_html_"): "present",
}
#: (module, module it names under TYPE_CHECKING) -> the names: what those delegations return.
DELEGATED_TYPES: dict[tuple[str, str], set[str]] = {
    ("result", "advice"): {"Recommendation"},
    ("result", "present"): {"Summary"},
    ("fleet_result", "advice"): {"FleetRecommendation"},
}


def module_name(path: Path, root: Path) -> str:
    return ".".join(path.with_suffix("").relative_to(root).parts)


def imports(tree: ast.Module, name: str, package: str) -> list[tuple[str, str, bool, list[str]]]:
    """Every import of the package's modules in ``tree``: (where: the enclosing function or class path, or
    "" at module level; the module imported; whether under TYPE_CHECKING; the names imported)."""
    found = []
    here = name.split(".")[:-1]  # the package a relative import starts from

    def visit(node: ast.AST, where: str, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner, checking = where, typing_only
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{where}.{child.name}" if where else child.name
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                checking = True
            if isinstance(child, ast.ImportFrom):
                names = [a.name for a in child.names]
                if child.level:
                    base = here[: len(here) - child.level + 1]
                    target = ".".join([*base, *(child.module or "").split(".")]).strip(".")
                elif child.module and (child.module == package or child.module.startswith(package + ".")):
                    target = child.module.removeprefix(package).lstrip(".")
                else:
                    target = None
                if target is not None:
                    if target == "":  # from mlxtune import store, view
                        found.extend((inner, n, checking, []) for n in names)
                    else:
                        found.append((inner, target, checking, names))
            elif isinstance(child, ast.Import):
                found.extend((inner, a.name.removeprefix(package + "."), checking, [])
                             for a in child.names if a.name.startswith(package + "."))
            visit(child, inner, checking)

    visit(tree, "", False)
    return found


def edges(root: Path, package: str) -> list[tuple[str, str, str, bool, list[str]]]:
    """(importer, imported, where, under TYPE_CHECKING, names) for every import inside the package."""
    trees = {module_name(p, root): ast.parse(p.read_text(encoding="utf-8")) for p in root.rglob("*.py")}
    known = {name.removesuffix(".__init__") for name in trees} | set(trees)
    found = []
    for name, tree in trees.items():
        short = name.removesuffix(".__init__") if name != "__init__" else name
        for where, target, checking, names in imports(tree, name, package):
            module = target if target in known else target.rsplit(".", 1)[0]
            if module in known and module != short:
                found.append((short, module, where, checking, names))
    return found


def circles(found: list[tuple[str, str, str, bool, list[str]]]) -> list[str]:
    """Every module that reaches itself through the imports in ``found``, with one such path."""
    graph: dict[str, set[str]] = {}
    for importer, imported, *_ in found:
        graph.setdefault(importer, set()).add(imported)
    loops = []
    for start in sorted(graph):
        seen, stack = set(), [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    loops.append(" -> ".join([*path, start]))
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return loops


def layer_of(module: str) -> int:
    for index, members in enumerate(LAYERS.values()):
        if module in members:
            return index
    raise AssertionError(f"mlxtune/{module.replace('.', '/')}.py is in no layer: add it to LAYERS "
                         "(and to README's Layout and DESIGN.md)")


def is_delegation(importer: str, imported: str, where: str, checking: bool, names: list[str]) -> bool:
    if checking:
        return set(names) <= DELEGATED_TYPES.get((importer, imported), set())
    return DELEGATIONS.get((importer, where)) == imported


def package_edges() -> list[tuple[str, str, str, bool, list[str]]]:
    return edges(PACKAGE, "mlxtune")


def test_every_module_is_in_one_layer() -> None:
    modules = {module_name(p, PACKAGE).removesuffix(".__init__") for p in PACKAGE.rglob("*.py")}
    placed = [m for members in LAYERS.values() for m in members]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    assert sorted(modules) == sorted(placed)


def test_no_import_reaches_up_but_the_named_delegations() -> None:
    upward = [f"{importer} -> {imported} ({where or 'module level'}{', type only' if checking else ''})"
              for importer, imported, where, checking, names in package_edges()
              if layer_of(imported) > layer_of(importer)
              and not is_delegation(importer, imported, where, checking, names)]
    assert upward == []


def test_no_module_imports_itself_through_others_but_by_a_named_delegation() -> None:
    kept = [e for e in package_edges() if not is_delegation(*e)]
    assert circles(kept) == []


def test_each_named_delegation_is_one_import_and_one_return() -> None:
    trees = {module_name(p, PACKAGE): ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.glob("*.py")}
    for (module, method), target in DELEGATIONS.items():
        owner, name = method.split(".")
        cls = next(n for n in trees[module].body if isinstance(n, ast.ClassDef) and n.name == owner)
        func = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)
        body = [s for s in func.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        assert [type(s) for s in body] == [ast.ImportFrom, ast.Return], f"{module}.{method}"
        assert body[0].module == f"mlxtune.{target}", f"{module}.{method}"


def test_the_record_shape_and_the_numbers_need_no_mlx() -> None:
    """Reading saved results, their numbers and their words never loads MLX: nothing at or below the
    analysis layer, and no word, reaches the modules that import it."""
    graph: dict[str, set[str]] = {}
    for importer, imported, *_ in package_edges():
        graph.setdefault(importer, set()).add(imported)
    for start in (*LAYERS["foundation"], *LAYERS["io"], "stats", "decision", "view"):
        reached, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in reached:
                    reached.add(nxt)
                    stack.append(nxt)
        assert not reached & {"_mlx", "memory"}, start


@pytest.mark.parametrize("where", ["inside a function", "under TYPE_CHECKING"])
def test_the_check_sees_a_circle_made_through_an_import_inside_a_function_or_for_types(
        tmp_path: Path, where: str) -> None:
    """The checks above would pass on a circle they cannot see: build one and show they see it."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "low.py").write_text("from pkg.high import shown\n")
    hidden = {
        "inside a function": "def work():\n    from pkg.low import x\n    return x\n",
        "under TYPE_CHECKING": ("from typing import TYPE_CHECKING\n"
                                "if TYPE_CHECKING:\n    from pkg.low import x\n"),
    }[where]
    (root / "high.py").write_text(textwrap.dedent(hidden) + "shown = 1\n")
    found = edges(root, "pkg")
    assert ("high", "low") in {(a, b) for a, b, *_ in found}
    assert circles(found) == ["high -> low -> high", "low -> high -> low"]
