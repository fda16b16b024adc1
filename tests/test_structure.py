"""The house plan, checked: no import circle, no import up the layers, small functions and modules, public seams.

Layers, bottom to top (a module may import its own layer or a lower one, never a higher one):

1. core      - io, tensor_files, edits, lora, vectors, families, spans, metrics, plots, interventions, schema,
               openai_client, versions: math, files, shared validation, the one OpenAI-compatible client factory
2. models    - embedded, remote, model, loading, reference, bridge, rollouts, model_identity, local_server:
               a chat model under nnsight, and its rollouts through a serving engine
3. judges    - scoring text. A service below the stages rather than a stage after organisms: the axis
               build (role adherence), organism eval, the stress test and the analyses all score answers,
               and judges import no stage, so placing them here keeps every one of those imports downward
4. axis, capping
5. organisms
6. stress
7. analysis, report, demo, demo_report - a finished run's analyses, pages and figures
8. wiring    - every ``<stage>/cli.py``, the root ``cli.py``, the package facade ``__init__.py`` and the
               old module paths kept for one release (``axis_pipeline``, ``persona_space``, ``roledata``)

Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "persona_probe"

LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"io", "edits", "lora", "vectors", "families", "spans", "metrics", "plots", "interventions", "schema",
              "progress", "openai_client", "tensor_files", "versions"}),
    ("models", {"embedded", "remote", "model", "sampling", "loading", "reference", "bridge", "rollouts",
                "local_server", "model_identity"}),
    ("judges", {"judges"}),
    ("axis/capping", {"axis", "capping"}),
    ("organisms", {"organisms"}),
    ("stress", {"stress"}),
    ("analysis", {"analysis", "report", "demo", "demo_report"}),
    ("wiring", {"cli", "__init__", "axis_pipeline", "persona_space", "roledata"}),
]
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400


# ------------------------------------------------------------------ reading the package
def module_name(path: Path, pkg: Path = PKG) -> str:
    """``persona_probe.axis.pipeline`` for ``persona_probe/axis/pipeline.py``; packages by their ``__init__``."""
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, pkg: Path = PKG) -> set[str]:
    """Every ``persona_probe`` module ``path`` imports (anywhere in the file), as dotted names."""
    name = module_name(path, pkg)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub, pkg) else base)
    return {m for m in found if m == pkg.name or m.startswith(pkg.name + ".")}


def _is_module(dotted: str, pkg: Path) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (pkg / rel).with_suffix(".py").is_file() or (pkg / rel / "__init__.py").is_file()


def import_graph(pkg: Path = PKG) -> dict[str, set[str]]:
    return {module_name(p, pkg): project_imports(p, pkg) for p in sorted(pkg.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of a ``persona_probe...`` module."""
    parts = module.split(".")[1:]
    if not parts:
        key = "__init__"  # the package facade
    elif parts[-1] == "cli":
        key = "cli"  # every stage's command line is wiring
    else:
        key = parts[0]
    for i, (_, names) in enumerate(LAYERS):
        if key in names:
            return i
    raise AssertionError(f"{module} is in no layer; add it to LAYERS in {__file__}")


# ------------------------------------------------------------------ the checks, as functions the negative tests reuse
def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
                  for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def oversized(paths: list[Path], root: Path = ROOT) -> list[str]:
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            out.append(f"{path.relative_to(root)}: module of {n} lines > {MAX_MODULE_LINES}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(root)}:{node.lineno}: {node.name}() has {length} lines "
                               f"> {MAX_FUNCTION_LINES}")
    return out


def private_imports(pkg: Path = PKG) -> list[str]:
    """``from persona_probe.x import _name``: another module's private name."""
    out = []
    for path in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(pkg.name)):
                out += [f"{module_name(path, pkg)} imports {node.module or '.'}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    return out


# ------------------------------------------------------------------ the house plan holds
def test_no_import_circle():
    assert import_cycles(import_graph()) == []


def test_no_module_imports_a_layer_above_it():
    assert upward_imports(import_graph()) == []


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_remote_imports_only_the_edit_math():
    assert import_graph()["persona_probe.remote"] <= {"persona_probe.edits"}


def test_no_private_names_across_modules():
    assert private_imports() == []


def test_functions_and_modules_are_small():
    paths = [*sorted(PKG.rglob("*.py")), *sorted((ROOT / "analyses").glob("*.py")),
             *sorted((ROOT / "bench").glob("*.py"))]
    assert len(paths) > 60
    assert oversized(paths) == []


def test_every_stage_has_its_folder_and_cli():
    for stage in ("axis", "capping", "organisms", "judges", "stress", "analysis"):
        assert (PKG / stage / "__init__.py").is_file() and (PKG / stage / "cli.py").is_file(), stage
    assert not (PKG / "commands").exists()


# ------------------------------------------------------------------ the checks can fail
def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "persona_probe"
    for rel, text in {"__init__.py": "", **files}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_an_upward_import_is_reported(tmp_path):
    pkg = _fake_package(tmp_path, {
        "io.py": "def f():\n    from .stress import run  # a lazy import still counts\n",
        "stress/__init__.py": "", "stress/run.py": "from ..io import f\n",
        "axis/__init__.py": "", "axis/cli.py": "from ..stress import run\n"})
    graph = import_graph(pkg)
    assert graph["persona_probe.io"] == {"persona_probe.stress.run"}
    assert upward_imports(graph) == ["persona_probe.io (core) imports persona_probe.stress.run (stress)"]


def test_an_import_circle_is_reported(tmp_path):
    pkg = _fake_package(tmp_path, {"loading.py": "from .model import X\n", "model.py": "from . import remote\n",
                                   "remote.py": "def g():\n    from .loading import load_model\n",
                                   "edits.py": "import torch\n"})
    assert import_cycles(import_graph(pkg)) == [["persona_probe.loading", "persona_probe.model",
                                                 "persona_probe.remote"]]


def test_long_functions_and_modules_are_reported(tmp_path):
    long_fn = tmp_path / "long.py"
    long_fn.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized([long_fn, big], root=tmp_path) == [
        f"long.py:1: f() has {MAX_FUNCTION_LINES + 1} lines > {MAX_FUNCTION_LINES}",
        f"big.py: module of {MAX_MODULE_LINES + 1} lines > {MAX_MODULE_LINES}"]


def test_a_private_import_is_reported(tmp_path):
    pkg = _fake_package(tmp_path, {"loading.py": "from .families import _probe\n", "families.py": "_probe = 1\n"})
    assert private_imports(pkg) == ["persona_probe.loading imports families._probe"]
