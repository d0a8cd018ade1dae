"""The package's layers (README, "Architecture") and the DVC stages' code dependencies.

* Layering: a module imports only modules of its own layer or of layers below it (function-level imports
  included), the leaves in ``siasamrea/core`` import nothing of the project, and there is no import cycle.
* Stage dependencies: every project module a stage's notebook (or command) can reach through imports, or
  through the child processes it starts (``python -m siasamrea...``), is inside one of the stage's ``deps``
  in ``dvc.yaml``, so that editing it re-runs the stage.

Both read the source with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "siasamrea"

#: Sub-package -> layer. A module may import its own sub-package and lower layers; two sub-packages of one
#: layer do not import each other.
LAYERS = {
    "core": 0,
    "method": 1,
    "video": 1,
    "synthetic": 2,
    "data": 3,
    "training": 4,
    "pipeline": 5,
    "analysis": 6,
    "perf": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The project module an imported name refers to (``pkg.mod.attr`` -> ``pkg.mod``), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of_source(source: str, importer: str, is_package: bool) -> set[str]:
    """Project modules imported anywhere in ``source`` (top level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = importer.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{module}.{a.name}" for a in node.names] + [module]
        else:
            continue
        for t in targets:
            if t.startswith("siasamrea") and (m := resolve(t)) is not None and m != importer:
                found.add(m)
    # `from pkg import mod` also adds pkg itself (its __init__ runs): keep only the most specific
    return {m for m in found if not any(o != m and o.startswith(m + ".") for o in found) or m in MODULES}


def graph() -> dict[str, set[str]]:
    return {
        m: imports_of_source(p.read_text(encoding="utf-8"), m, p.name == "__init__.py")
        for m, p in MODULES.items()
    }


def launches(source: str) -> set[str]:
    """Project modules ``source`` runs as child processes (``[sys.executable, "-m", "siasamrea...", ..]``)."""
    found = set()
    for name in re.findall(r'"-m",\s*"(siasamrea[\w.]*)"', source):
        found.add(resolve(name))
        if f"{name}.__main__" in MODULES:
            found.add(f"{name}.__main__")
    return found


def run_graph() -> dict[str, set[str]]:
    """What running a module can execute: its imports and the modules it starts as child processes."""
    return {m: deps | launches(MODULES[m].read_text(encoding="utf-8")) for m, deps in graph().items()}


def layer_of(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1], LAYERS[parts[1]]


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS)
    stray = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert stray == [], f"modules outside the layers: {stray}"


def test_no_module_imports_a_higher_layer_or_a_sibling_package():
    wrong = []
    for importer, targets in graph().items():
        own = layer_of(importer)
        for target in targets:
            theirs = layer_of(target)
            if own is None or theirs is None:
                wrong.append(f"{importer} -> {target} (the root package holds nothing)")
            elif theirs[1] > own[1] or (theirs[1] == own[1] and theirs[0] != own[0]):
                wrong.append(f"{importer} (layer {own[1]}) -> {target} (layer {theirs[1]})")
    assert wrong == [], "\n".join(wrong)


def test_core_modules_are_leaves():
    g = graph()
    for m in MODULES:
        if m.startswith("siasamrea.core."):
            assert all(t.startswith("siasamrea.core") for t in g[m]), (m, g[m])


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_the_layering_check_sees_a_violation():
    # the checker itself: a method module importing the trainer must be reported
    found = imports_of_source(
        "from siasamrea.training.trainer import Trainer\n", "siasamrea.method.model", False
    )
    assert found == {"siasamrea.training.trainer"}
    own, theirs = layer_of("siasamrea.method.model"), layer_of("siasamrea.training.trainer")
    assert theirs[1] > own[1]


# -- dvc.yaml: stage deps cover the code the stage runs ---------------------------------------------------
def closure(roots: set[str], g: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(g[m])
        # importing pkg.mod runs every parent package's __init__
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in MODULES)
    return seen


def notebook_imports(path: Path) -> set[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    return imports_of_source(code, "notebook", False)


def stage_roots(cmd: str) -> set[str]:
    roots = set()
    for nb in re.findall(r"notebooks/[\w.-]+\.ipynb", cmd):
        if (REPO / nb).is_file() and "runs/notebooks" not in nb:
            roots |= notebook_imports(REPO / nb)
    for mod in re.findall(r"-m (siasamrea[\w.]*)", cmd):
        name = resolve(mod)
        roots.add(name)
        if f"{name}.__main__" in MODULES:
            roots.add(f"{name}.__main__")
    return roots


def test_stage_deps_cover_the_code_each_stage_runs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    g = run_graph()
    missing = []
    for name, stage in stages.items():
        deps = [d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith("siasamrea")]
        for m in sorted(closure(stage_roots(stage["cmd"]), g)):
            path = MODULES[m].relative_to(REPO).as_posix()
            if MODULES[m].name == "__init__.py" and not has_code(MODULES[m]):
                continue  # a package docstring changes no result
            if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps):
                missing.append(f"{name}: {path}")
    assert missing == [], "stage code not in its deps:\n" + "\n".join(missing)


def has_code(path: Path) -> bool:
    """Anything but a docstring and ``from __future__`` imports."""
    for n in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant):
            continue
        if isinstance(n, ast.ImportFrom) and n.module == "__future__":
            continue
        return True
    return False


def test_root_package_holds_no_code():
    assert not has_code(PACKAGE / "__init__.py")
    assert has_code(PACKAGE / "core" / "fileio.py")  # the check itself


def test_the_deps_check_sees_a_missing_dependency():
    # the sampling figure's stage must depend on the sampler: drop it and the check must complain
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    reached = {
        MODULES[m].relative_to(REPO).as_posix()
        for m in closure(stage_roots(stages["figure1"]["cmd"]), run_graph())
    }
    assert "siasamrea/method/sampling.py" in reached
    # a training stage's notebook imports no training code: its runs are child processes, which count
    assert "siasamrea.training.trainer" not in closure(stage_roots(stages["finetune"]["cmd"]), graph())
    reached = closure(stage_roots(stages["finetune"]["cmd"]), run_graph())
    assert {"siasamrea.training.trainer", "siasamrea.training.grounding"} <= reached
