"""The layout shows the design: a pure core, a thin shell, no import cycles, small modules.

Read with ``ast`` from the source (nothing is imported), over the project's own modules
(``actors``, ``store``, ``sim``, ``bench``, ``supervisor.py``; tests aside):

- no import cycle, counting module-level and function-level imports alike;
- a function-level import only where an optional dependency is loaded lazily, with a comment
  on its line saying why;
- no module over 500 lines, no function over 80 lines;
- ``bench`` does not import the tests (it runs from any directory after ``pip install``).

The purity of ``actors.core`` is ``tests/core/test_purity.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "store", "sim", "bench")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def project_modules() -> dict[str, Path]:
    """Module name -> file, for every module of the project (tests aside)."""
    modules = {"supervisor": ROOT / "supervisor.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = project_modules()


def _resolve(name: str) -> str | None:
    """The project module that ``import name`` (or ``from x import name``) loads, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def imports(module: str) -> list[tuple[ast.stmt, str, bool]]:
    """(statement, project module imported, at module level?) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                out.append((node, resolved, id(node) in top))
    return out


def graph() -> dict[str, set[str]]:
    return {module: {target for _, target, _ in imports(module)} for module in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_projects_modules():
    assert cycles(graph()) == []


def test_function_level_imports_are_rare_and_say_why():
    """Every import inside a function (of anything: the project, a library, the standard
    library) carries a comment on its line saying why it is not at the top."""
    unexplained = []
    for module, path in MODULES.items():
        source = path.read_text().splitlines()
        tree = ast.parse("\n".join(source))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                if "#" not in source[node.lineno - 1]:
                    unexplained.append(f"{module}:{node.lineno}")
    assert unexplained == []


def test_modules_and_functions_stay_small():
    too_long = []
    for module, path in MODULES.items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []


def test_bench_runs_without_the_tests():
    """``python -m bench`` after ``pip install`` has no ``tests`` package to import."""
    offenders = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(name == "tests" or name.startswith("tests.") for name in names):
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []
