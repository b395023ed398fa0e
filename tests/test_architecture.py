"""The library's floors hold (README, *Architecture*): the import-linter contracts in pyproject.toml,
ruff over the library, the tests and the notebooks' twins, and the static measures of the layout
(no import cycle, modules split by job, function-local imports only where a heavy dependency is
deferred). A back-arrow, a cycle or a lint error fails here, so CI fails."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qinn_lib import paths

ROOT = paths.repo_root()
LIB = ROOT / "qinn_lib"
FLOORS = ("events", "models", "training", "evaluation", "hardware", "experiments", "notebook")
#: The root holds small utilities and the thin command modules users type, nothing else.
ROOT_MODULES = {"__init__", "errors", "env", "paths", "atomic", "threads", "settings", "compiling", "compile_cache",
                "reports", "shipped", "bench", "runs", "lab", "book", "app"}
COMMANDS = ("reports", "shipped", "bench", "runs", "lab", "book", "app")
MAX_LINES = 600
MAX_LOCAL_IMPORTS = 15


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(LIB.rglob("*.py")):
        if "shipped_models" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it is a dev requirement (pip install -e '.[dev]')")
    return found


def test_import_linter_contracts_are_kept():
    proc = subprocess.run([_tool("lint-imports"), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


def test_ruff_is_clean():
    proc = subprocess.run([_tool("ruff"), "check", "qinn_lib", "tests", "notebooks"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_every_floor_is_a_package_and_the_root_holds_only_utilities_and_commands():
    for floor in FLOORS:
        assert (LIB / floor / "__init__.py").is_file(), f"qinn_lib/{floor}/ is not a package"
    root = {p.stem for p in LIB.glob("*.py")}
    assert root == ROOT_MODULES, f"unexpected modules at the root: {sorted(root ^ ROOT_MODULES)}"


def test_commands_are_thin():
    """A command module at the root only hands on ``main`` (and, for ``lab``, the server hooks)."""
    for name in COMMANDS:
        tree = ast.parse((LIB / f"{name}.py").read_text())
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign))]
        assert defs == [], f"qinn_lib/{name}.py defines {[getattr(d, 'name', '?') for d in defs]}: keep it thin"


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qinn_lib":
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in mods else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.split(".")[0] == "qinn_lib")
    return {m: {t for t in ts if t in mods and t != m} for m, ts in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules():
    # Counted by module (package faces excluded: an __init__ here holds only its docstring).
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert big == {}, f"split these by job: {big}"


def _local_package_imports() -> list[tuple[str, int, str]]:
    out = []
    for name, path in _modules().items():
        lines = path.read_text().splitlines()

        def walk(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if in_function and isinstance(child, ast.ImportFrom) and (child.module or "").startswith("qinn_lib"):
                    out.append((name, child.lineno, lines[child.lineno - 1]))
                walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

        walk(ast.parse(path.read_text()), False)
    return out


def test_function_local_package_imports_are_few_and_say_why():
    """Package modules are imported at the top, where the floors are visible; a function-local
    import only defers a heavy dependency (PennyLane through the reference circuits; torch where
    the reports runner plans training), and its line says so."""
    local = _local_package_imports()
    assert len(local) <= MAX_LOCAL_IMPORTS, [f"{m}:{n}" for m, n, _ in local]
    unexplained = [f"{m}:{n}: {text.strip()}" for m, n, text in local if "# deferred:" not in text]
    assert unexplained == []


def test_notebooks_import_the_floors_not_the_commands():
    for nb in sorted((ROOT / "notebooks").glob("*.py")):  # the seven reports and the app's explore.py
        for node in ast.walk(ast.parse(nb.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "qinn_lib":
                names = {a.name for a in node.names}
                assert not names & set(COMMANDS), f"{nb.name} imports a command module {names & set(COMMANDS)}"


def test_the_runner_and_the_run_configurations_import_without_torch():
    """``python -m qinn_lib.reports --list`` and a bad ``-p`` answer without importing torch, FrEIA
    or Dask (regression: the layered layout first made ``training.config`` import the INN model
    for its size table, and the runner import the training jobs at the top)."""
    code = ("import sys, qinn_lib.reports, qinn_lib.training.config, qinn_lib.notebook.parameters; "
            "print(sorted(m for m in ('torch', 'FrEIA', 'distributed', 'pennylane') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_module_but_the_jax_peer_is_kept_from_importing_jax():
    """The JAX contract lists its source modules one by one inside experiments/ (the peer and its
    benchmark may import JAX): a new experiments module must be added to it, or JAX could creep in."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (jax,) = [c for c in contracts if "jax" in c.get("forbidden_modules", [])]
    allowed = {"qinn_lib.experiments.peer_jax", "qinn_lib.experiments.bench_peers", "qinn_lib.experiments"}
    experiments = {m for m in _modules() if m.startswith("qinn_lib.experiments")} - allowed
    assert experiments <= set(jax["source_modules"]), sorted(experiments - set(jax["source_modules"]))
    floors = {f"qinn_lib.{f}" for f in FLOORS if f != "experiments"}
    assert floors <= set(jax["source_modules"]), sorted(floors - set(jax["source_modules"]))
