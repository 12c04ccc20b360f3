"""The architecture, checked: every package is a layer, and no module imports a layer above its own.

Layers, lowest first (docs/guide/architecture.md): core -> detector -> evaluation -> training -> tracking -> stream
-> serve -> fleet -> bench -> commands.
Imports inside a module's ``if __name__ == "__main__":`` block don't count: they run only when the module is a
script (the ``python -m detector.tune`` shims), never when another module imports it.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LAYERS = ("core", "detector", "evaluation", "training", "tracking", "stream", "serve", "fleet", "bench", "commands")
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def is_main_guard(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__"
                                                   for c in test.comparators))


def imported_modules(source: str) -> set[str]:
    """Every module a file imports, at any depth (functions too), except under ``if __name__ == "__main__":``."""
    found: set[str] = set()
    body = [node for node in ast.parse(source).body if not is_main_guard(node)]
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    """``module imports other`` lines for every import of a higher layer (modules outside the layers are free)."""
    out = []
    for module, imports in sorted(graph.items()):
        layer = module.split(".")[0]
        for other in sorted(imports):
            target = other.split(".")[0]
            if layer in RANK and target in RANK and RANK[target] > RANK[layer]:
                out.append(f"{module} imports {other} ({target} is above {layer})")
    return out


def project_graph() -> dict[str, set[str]]:
    graph = {}
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            graph[module] = imported_modules(path.read_text())
    return graph


def test_every_package_of_the_project_is_a_layer():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYERS), "a new package must be placed in LAYERS (and in docs/guide/architecture.md)"


def test_no_module_imports_a_layer_above_its_own():
    graph = project_graph()
    assert len(graph) > 40 and violations(graph) == []


def test_the_check_catches_a_back_import_and_exempts_script_entry_points(tmp_path: Path):
    synthetic = {
        "core.types": {"numpy"},
        "detector.models": {"core.types", "torch"},
        "detector.bad": {"stream.pipeline"},           # the detector must know nothing of streams
        "stream.pipeline": {"detector.models", "core.types"},
        "evaluation.lazy": {"commands.evaluate"},     # a function-level import counts too (see below)
    }
    assert violations(synthetic) == [
        "detector.bad imports stream.pipeline (stream is above detector)",
        "evaluation.lazy imports commands.evaluate (commands is above evaluation)",
    ]
    source = ("import numpy\n"
              "def f():\n    from stream.pipeline import Pipeline\n"
              "if __name__ == '__main__':\n    from commands.tune import main\n")
    assert imported_modules(source) == {"numpy", "stream.pipeline", "stream.pipeline.Pipeline"}
    assert violations({"detector.shim": imported_modules(source)}) == [
        "detector.shim imports stream.pipeline (stream is above detector)",
        "detector.shim imports stream.pipeline.Pipeline (stream is above detector)",
    ]


def test_importing_the_lower_layers_loads_nothing_above_them():
    """At run time too: the detector, evaluation and training load no stream, bench or command module."""
    code = ("import sys, detector.backend, detector.export, detector.backend_onnx, evaluation.evaluate, "
            "training.train, detector.tune, detector.train, detector.evaluate\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('stream', 'bench', 'commands')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
