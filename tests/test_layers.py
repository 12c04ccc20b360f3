"""The architecture, checked: every package is a layer, and no module imports a layer above its own.

Layers, lowest first (docs/guide/architecture.md): core -> detector -> evaluation -> training -> tracking -> stream
-> serve -> fleet -> bench -> commands.
Every import counts, at any depth (functions too, and ``if __name__ == "__main__":`` blocks): the library layers
are no scripts, ``driving-detect`` is the one entry point (`test_no_library_module_is_a_command`).
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
    """Every module a file imports, at any depth (functions and ``__main__`` blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
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


def test_the_check_catches_a_back_import_also_in_a_function_or_a_main_block(tmp_path: Path):
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
    assert imported_modules(source) == {"numpy", "stream.pipeline", "stream.pipeline.Pipeline", "commands.tune",
                                        "commands.tune.main"}
    assert violations({"detector.shim": imported_modules(source)}) == [
        "detector.shim imports commands.tune (commands is above detector)",
        "detector.shim imports commands.tune.main (commands is above detector)",
        "detector.shim imports stream.pipeline (stream is above detector)",
        "detector.shim imports stream.pipeline.Pipeline (stream is above detector)",
    ]


def test_no_library_module_is_a_command():
    """No ``python -m detector.tune`` style forms: below commands/ (and bench/'s measuring scripts) no module has
    a ``__main__`` block or is a package's ``__main__.py``."""
    scripts = []
    for layer in LAYERS[:LAYERS.index("bench")]:
        for path in sorted((REPO / layer).rglob("*.py")):
            if path.name == "__main__.py" or any(is_main_guard(n) for n in ast.parse(path.read_text()).body):
                scripts.append(str(path.relative_to(REPO)))
    assert scripts == []


def test_importing_the_lower_layers_loads_nothing_above_them():
    """At run time too: the detector, evaluation and training load no stream, bench or command module."""
    code = ("import sys, detector.backend, detector.export, detector.backend_onnx, evaluation.evaluate, "
            "training.train\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('stream', 'bench', 'commands')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def private_names(source: str) -> set[str]:
    """The private names a module defines: module-level ``_x``, functions and classes ``_x``, and ``self._x`` /
    ``cls._x`` attributes its classes set."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
              and node.value.id in ("self", "cls")):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_reaches(module: str, source: str, defined: dict[str, set[str]]) -> list[str]:
    """``module`` reading a private name (``obj._x`` on anything but ``self``/``cls``, or ``from m import _x``)
    that only another package defines. ``defined``: private name -> the packages that define it."""
    package, own = module.split(".")[0], private_names(source)
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name)
                                                    and node.value.id in ("self", "cls")):
            name = node.attr
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [f"{module}:{node.lineno} imports {node.module}.{a.name}" for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                    and node.module.split(".")[0] != package and node.module.split(".")[0] in RANK]
            continue
        else:
            continue
        if name in own or not name.startswith("_") or name.startswith("__"):
            continue
        if defined.get(name, set()) - {package}:
            out.append(f"{module}:{node.lineno} reads {ast.unparse(node)} (private to {sorted(defined[name])})")
    return out


def test_no_module_reaches_into_another_layers_private_attributes():
    sources = {}
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            sources[".".join(path.relative_to(REPO).with_suffix("").parts)] = path.read_text()
    defined: dict[str, set[str]] = {}
    for module, source in sources.items():
        for name in private_names(source):
            defined.setdefault(name, set()).add(module.split(".")[0])
    assert len(defined) > 20
    assert [line for module, source in sources.items() for line in private_reaches(module, source, defined)] == []


def test_the_private_access_check_catches_a_reach_across_packages():
    defined = {"_video": {"stream"}, "_cache": {"serve"}}
    source = ("from stream.pipeline import _helper\n"
              "def f(pipeline, self):\n    self._cache = 1\n    return pipeline._video, self._cache, pipeline._other\n")
    assert private_reaches("serve.live", source, defined) == [
        "serve.live:1 imports stream.pipeline._helper",
        "serve.live:4 reads pipeline._video (private to ['stream'])",
    ]
    assert private_reaches("stream.run", "def f(p):\n    return p._video\n", defined) == []


def test_the_graph_contract_loads_no_onnx_runtime():
    """OpenVINO and the exporter read a graph's metadata through `detector.graph`, never through ONNX Runtime."""
    code = ("import sys, detector.graph, detector.backend_openvino, detector.export, detector.export_cache\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'onnxruntime'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Imports that no pip requirement provides, and why: Debian's GObject bindings, used by the GStreamer RTSP server
# that runs under the system Python (bench/gst_rtsp_server.py).
SYSTEM_IMPORTS = {"gi"}


def test_every_imported_package_is_declared_in_pyproject():
    """A third-party import works here only by luck unless pyproject.toml requires its distribution (supervision
    came in through trackers, undeclared)."""
    import importlib.metadata
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}
    imported = {name.split(".")[0] for module in project_graph().values() for name in module}
    third_party = imported - set(sys.stdlib_module_names) - set(LAYERS) - SYSTEM_IMPORTS
    distributions = importlib.metadata.packages_distributions()
    undeclared = {top: distributions.get(top) for top in third_party
                  if not {d.lower().replace("_", "-") for d in distributions.get(top, [])} & declared}
    assert "supervision" in third_party and undeclared == {}
