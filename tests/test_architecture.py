"""The shape of the code, as rules a change cannot break silently.

- The modules of ``study`` import each other without cycles (module-level imports; an import
  inside a function runs later and is how a module defers a heavy or circular dependency).
- No module is over 400 lines and no function over 60 lines, except the ones listed below, each
  with its reason; a new one fails the test, and a listed one that has been split fails it too,
  so the lists only shrink.
- Outside the registries (``study/components/``, ``study/registry.py``) and the modules listed
  below, no code branches on a component's name: no comparison of a ``.name`` (or
  ``["name"]``) with a string, and no ``if`` that compares anything with the name of a registered
  optimizer, model, norm or schedule. Such a branch is what an entry's own fields
  (``needs_closure``, ``channels_last``) are for.

That the training job imports no pandas, matplotlib, seaborn or scipy is checked by running it:
tests/test_train.py::test_training_job_imports_neither_pandas_nor_plotting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "study"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Module (path from the repository root) → why it may be longer than MAX_MODULE_LINES.
LONG_MODULES: dict[str, str] = {}

# "path:function" (methods as Class.method, nested functions as outer.inner) → why it may be
# longer than MAX_FUNCTION_LINES.
LONG_FUNCTIONS: dict[str, str] = {}

# Where a component's name may be compared: the registries and the modules that own the entries.
REGISTRY_HOMES = ("study/components/", "study/registry.py")

# Module → why it may still branch on a component's name.
NAME_BRANCHES: dict[str, str] = {}

# Registered names that are also ordinary words of the code, so a comparison with them does not
# pick a component: name → why.
AMBIGUOUS_NAMES = {
    "none": "every switch's off value (a norm, a line search, a tuning metric)",
    "step": "the history column and the optimizer's method, besides the step-decay schedule",
}


def modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: module body, if/try blocks, not functions,
    classes or ``if TYPE_CHECKING:``."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
            todo += [s for h in node.handlers for s in h.body]
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports at module level."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in top_level_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        # `from pkg import sub` imports the submodule pkg.sub when there is one.
        subs = {f"{base}.{a.name}" for a in node.names}
        targets |= (subs & set(known)) or {base}
        targets.add(base)
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_sees_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_the_package_imports():
    graph = import_graph()
    assert "study.registry" in graph["study.components.optimizers.base"]
    assert "study.experiments.adabn" in graph["study.experiments.shift"]
    # `from study.figures import comparisons` is an edge to the submodule.
    assert "study.figures.comparisons" in graph["study.figures"]


def test_study_modules_import_each_other_without_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def module_lengths() -> dict[str, int]:
    return {rel(p): len(p.read_text().splitlines()) for p in modules().values()}


def function_lengths(path: Path) -> dict[str, int]:
    """Qualified function name → lines from ``def`` to its last line (docstring included)."""
    lengths: dict[str, int] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[name] = child.end_lineno - child.lineno + 1
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(ast.parse(path.read_text()), "")
    return lengths


def long_functions() -> dict[str, int]:
    return {
        f"{rel(path)}:{name}": n
        for path in modules().values()
        for name, n in function_lengths(path).items()
        if n > MAX_FUNCTION_LINES
    }


def test_function_lengths_count_from_def_to_the_last_line(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "def f():\n    x = 1\n\n    return x\n\nclass C:\n    def m(self):\n        pass\n"
    )
    assert function_lengths(path) == {"f": 4, "C.m": 2}


def test_no_module_is_longer_than_the_limit_unless_listed():
    lengths = module_lengths()
    too_long = {m: n for m, n in lengths.items() if n > MAX_MODULE_LINES and m not in LONG_MODULES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them): {too_long}"
    fixed = [m for m in LONG_MODULES if lengths.get(m, 0) <= MAX_MODULE_LINES]
    assert not fixed, f"now within the limit: remove them from LONG_MODULES: {fixed}"


def test_no_function_is_longer_than_the_limit_unless_listed():
    found = long_functions()
    new = {f: n for f, n in found.items() if f not in LONG_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them): {new}"
    fixed = [f for f in LONG_FUNCTIONS if f not in found]
    assert not fixed, f"now within the limit: remove them from LONG_FUNCTIONS: {fixed}"


def registered_names() -> set[str]:
    from study.components.models import MODELS
    from study.components.norms import NORMS
    from study.components.optimizers import OPTIMIZERS
    from study.components.schedules import SCHEDULES

    return {*OPTIMIZERS, *MODELS, *NORMS, *SCHEDULES} - set(AMBIGUOUS_NAMES)


def _is_name_lookup(node: ast.AST) -> bool:
    """``x.name`` or ``x["name"]``: the key that picks a registry entry."""
    if isinstance(node, ast.Attribute):
        return node.attr == "name"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "name"
    return False


def _string_literals(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {e.value for e in node.elts if isinstance(e, ast.Constant)}
    return set()


def name_branches(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, code) of each comparison of a component name with a literal in ``source``."""
    found, tree = [], ast.parse(source)
    tests = [n.test for n in ast.walk(tree) if isinstance(n, ast.If | ast.IfExp | ast.While)]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        literals = set().union(*map(_string_literals, sides))
        by_name = literals and any(map(_is_name_lookup, sides))
        in_test = any(node is t or node in ast.walk(t) for t in tests)
        if by_name or (in_test and literals & names):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_name_branch_scan_sees_planted_branches():
    names = {"adam", "lbfgs"}
    planted = (
        "if cfg.optim.name == 'lbfgs':\n    pass\n"
        "closure = cfg['optim']['name'] in ('x', 'y')\n"
        "if optimizer in ('adam', 'sgd'):\n    pass\n"
        "if cfg.line_search == 'strong_wolfe':\n    pass\n"
    )
    assert [line for line, _ in name_branches(planted, names)] == [1, 3, 4]


def test_no_code_outside_the_registries_branches_on_a_component_name():
    names = registered_names()
    branching = {
        rel(path): name_branches(path.read_text(), names)
        for path in modules().values()
        if not rel(path).startswith(REGISTRY_HOMES)
    }
    found = [
        f"{module}:{line}: {code}"
        for module, branches in branching.items()
        if module not in NAME_BRANCHES
        for line, code in branches
    ]
    assert not found, "ask the registry entry instead:\n" + "\n".join(found)
    fixed = [m for m in NAME_BRANCHES if not branching.get(m)]
    assert not fixed, f"no longer branching: remove them from NAME_BRANCHES: {fixed}"


@pytest.mark.parametrize("registry", ["OPTIMIZERS", "MODELS", "NORMS", "SCHEDULES"])
def test_the_scan_knows_every_registered_name(registry):
    import study.components.models as models
    import study.components.norms as norms
    import study.components.optimizers as optimizers
    import study.components.schedules as schedules

    module = {"OPTIMIZERS": optimizers, "MODELS": models, "NORMS": norms}.get(registry, schedules)
    entries = set(getattr(module, registry)) - set(AMBIGUOUS_NAMES)
    assert entries and entries <= registered_names()
