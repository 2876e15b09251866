"""The house is one-way: `samples/, benchmarks/ -> export/ -> train/ -> g2d_edge` (arrows: may import).

* static: every import in the source (module level and inside functions) follows the layers, the runtime imports
  only its own dependencies (optional extras lazily), and no modules import each other in a circle;
* dynamic: `g2d_edge` imports and recognises faces with the shipped model while torch, train, export and the other
  `[train]` extras cannot be imported at all.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Set, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("g2d_edge", "train", "export", "benchmarks", "samples")
#: What each part may import of the project (itself included).
ALLOWED = {
    "g2d_edge": {"g2d_edge"},
    "train": {"train", "g2d_edge"},
    "export": {"export", "train", "g2d_edge"},
    "benchmarks": {"benchmarks", "export", "train", "g2d_edge"},
    "samples": {"samples", "export", "train", "g2d_edge"},
}
#: Third-party modules the runtime imports: its dependencies (pyproject `dependencies`) ...
RUNTIME_DEPENDENCIES = {"numpy", "cv2", "mediapipe", "onnxruntime", "supervision"}
#: ... and, only inside functions, those of its optional extras ([tensorrt], [triton], [milvus], [faiss], tqdm of
#: [serve] for the CLI's progress bars).
RUNTIME_EXTRAS = {"tensorrt", "pycuda", "tritonclient", "pymilvus", "milvus_lite", "faiss", "tqdm"}
#: The [serve] extra's modules: imported at module level only inside `g2d_edge.serve` (the `g2d serve` service),
#: which the rest of the runtime imports only inside functions.
SERVE_PACKAGE = "g2d_edge.serve"
SERVE_EXTRAS = {"fastapi", "starlette", "uvicorn", "python_multipart", "prometheus_client", "pydantic"}
#: Never importable in the dynamic check: the layers above the runtime and the [train] extras.
BLOCKED = ("torch", "train", "export", "benchmarks", "tqdm", "yaml", "onnx", "onnxslim") + tuple(sorted(SERVE_EXTRAS))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _targets(module: str, is_package: bool, node: ast.AST, known: Dict[str, Path]) -> List[str]:
    """Absolute names of what an import statement imports (a submodule when `from pkg import name` names one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")[:None if is_package else -1]
        parts = parts[:len(parts) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _imports() -> Dict[str, Tuple[Set[str], Set[str]]]:
    """{module: (imported at module level, imported inside functions)} for every module of the project."""
    known = _modules()
    out = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top: Set[str] = set()
        nested: Set[str] = set()
        in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", "") != "__future__":
                names = _targets(module, path.name == "__init__.py", node, known)
                (nested if id(node) in in_function else top).update(names)
        out[module] = (top, nested)
    return out


def _project_module(name: str, known: Dict[str, Path]) -> str:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def test_imports_follow_the_layers():
    wrong = []
    for module, (top, nested) in _imports().items():
        part = module.split(".")[0]
        for target in top | nested:
            root = target.split(".")[0]
            if root in PACKAGES and root not in ALLOWED[part]:
                wrong.append(f"{module} imports {target}")
            if part == "g2d_edge" and root == "torch":
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layers (samples/, benchmarks/ -> export/ -> train/ -> g2d_edge):\n" + \
        "\n".join(sorted(wrong))


def test_the_runtime_imports_only_its_dependencies():
    stdlib = set(sys.stdlib_module_names)
    wrong = []
    for module, (top, nested) in _imports().items():
        if not module.startswith("g2d_edge"):
            continue
        for target in top | nested:
            root = target.split(".")[0]
            if root in stdlib or root in PACKAGES or root in RUNTIME_DEPENDENCIES:
                continue
            if root in RUNTIME_EXTRAS and target not in top:
                continue
            if root in SERVE_EXTRAS and (module == SERVE_PACKAGE or module.startswith(SERVE_PACKAGE + ".")):
                continue
            where = "at module level" if target in top else "inside a function"
            wrong.append(f"{module} imports {target} {where}")
    assert not wrong, ("the runtime imports what a camera box does not install (optional extras only inside "
                       "functions):\n" + "\n".join(sorted(wrong)))


def test_only_g2d_serve_loads_the_serve_extra():
    """Outside `g2d_edge.serve`, the runtime imports the service only inside functions (the `g2d serve` command), so
    importing g2d_edge, its CLI or `g2d --help` never needs FastAPI and co."""
    wrong = sorted(f"{module} imports {target} at module level" for module, (top, _) in _imports().items()
                   if module.startswith("g2d_edge") and not module.startswith(SERVE_PACKAGE)
                   for target in top if target == SERVE_PACKAGE or target.startswith(SERVE_PACKAGE + "."))
    assert not wrong, "\n".join(wrong)
    assert "g2d_edge.serve.command" in _imports()["g2d_edge.cli"][1]  # the check sees the lazy import
    assert "fastapi" in _imports()["g2d_edge.serve.app"][0]


def test_no_import_circle():
    known = _modules()
    graph = {m: {_project_module(t, known) for t in top | nested} - {m, ""}
             for m, (top, nested) in _imports().items()}
    circles = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "modules that import each other in a circle:\n" + "\n".join(circles)


def test_the_checks_see_the_imports():
    """The graph the checks walk is the real one (a parser that saw nothing would pass every check)."""
    imports = _imports()
    top, nested = imports["g2d_edge.recognizer"]
    assert {"g2d_edge.backends.loader", "g2d_edge.errors", "numpy"} <= top
    assert "train.model" in imports["export.onnx"][0] and "torch" in imports["export.onnx"][0]
    assert "g2d_edge.backends.engine_build" in imports["g2d_edge.backends.loader"][1]  # a lazy import
    assert "tensorrt" in imports["g2d_edge.backends.tensorrt_env"][1]


def test_the_runtime_recognises_faces_without_torch_train_or_export(celeba_people, tmp_path):
    """Run the shipped model in a fresh interpreter in which torch, train, export and the [train] extras cannot be
    imported at all (not even lazily): import, enrol, identify, verify."""
    people = list(celeba_people.items())[:2]
    code = textwrap.dedent(f"""
        import importlib.abc, sys

        BLOCKED = {BLOCKED!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is not installed here")
                return None

        sys.meta_path.insert(0, Block())
        import cv2
        import g2d_edge
        from g2d_edge import Recognizer

        people = {[(name, [str(p) for p in photos[:3]]) for name, photos in people]!r}
        with Recognizer() as rec:
            for name, photos in people:
                rec.enroll(name, photos[:2])
            faces = rec.identify(cv2.imread(people[1][1][2]))
            same, _ = rec.verify(people[0][1][0], people[0][1][1])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(rec.sidecar.name, faces[0].name, same, loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    model, name, same, loaded = out.stdout.split(maxsplit=3)
    assert model == "g2d-edge-m" and name == people[1][0] and same == "True" and loaded.strip() == "[]"


#: Direct writes of files no reader sees half-written: (module, call).
DIRECT_WRITES_ALLOWED = {
    ("g2d_edge.backends.engine_build", "write_bytes"),  # a scratch copy of the engine for the parity check
}


def test_files_are_written_through_atomic_write():
    """Every file the code writes goes through `g2d_edge.files.atomic_write` (temporary file, fsync, rename), not
    `Path.write_text` / `write_bytes` / `os.replace` of its own."""
    direct = []
    for module, path in _modules().items():
        if module == "g2d_edge.files":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            is_os = isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            if (name in ("write_text", "write_bytes") or (is_os and name in ("replace", "rename"))) \
                    and (module, name) not in DIRECT_WRITES_ALLOWED:
                direct.append(f"{module}:{node.lineno} {name}")
    assert not direct, "write these with g2d_edge.files.atomic_write*:\n" + "\n".join(direct)


#: Limits that keep the code readable in one sitting (issue 13): lines per function and per module.
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600


def test_functions_and_modules_stay_short():
    too_long = []
    for module, path in _modules().items():
        if module.split(".")[0] not in ("g2d_edge", "train", "export"):
            continue
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"module {module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"function {module}.{node.name}: {length} lines")
    assert not too_long, (f"split into named steps (functions <= {MAX_FUNCTION_LINES} lines, modules <= "
                          f"{MAX_MODULE_LINES}):\n" + "\n".join(too_long))
