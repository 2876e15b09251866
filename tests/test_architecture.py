"""The house is one-way: `samples/, benchmarks/ -> export/ -> train/ -> g2d_edge` (arrows: may import).

* static: every import in the source (module level and inside functions) follows the layers, the runtime imports
  only its own dependencies (optional extras lazily), and no modules import each other in a circle;
* one name, one import path: every public name of the runtime has one home module (besides the names of
  `g2d_edge.__all__` and its own package's face), and g2d_edge/ keeps a small ground floor of modules;
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
#: ... and, only inside functions, those of its optional extras ([tensorrt], [triton], [milvus], [faiss], [openvino];
#: gevent is tritonclient[http]'s own dependency, used for the HTTP client's total deadline; tqdm of [serve] for the
#: CLI's progress bars).
RUNTIME_EXTRAS = {"tensorrt", "pycuda", "tritonclient", "gevent", "pymilvus", "milvus_lite", "faiss", "openvino", "tqdm"}
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
    assert "g2d_edge.serve.command" in _imports()["g2d_edge.cli.commands"][1]  # the check sees the lazy import
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


#: At most this many modules directly in g2d_edge/ (issue 21): a concept with several modules gets a sub-package.
MAX_TOP_LEVEL_MODULES = 16


def test_the_runtime_ground_floor_stays_small():
    """g2d_edge/ holds at most MAX_TOP_LEVEL_MODULES modules besides its sub-packages, and no two of them share a
    name prefix (`gallery.py` beside `gallery_file.py` is a sub-package waiting to be made)."""
    modules = sorted(p.stem for p in (REPO / "g2d_edge").glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, f"{len(modules)} modules in g2d_edge/: {', '.join(modules)}"
    prefixes: Dict[str, List[str]] = {}
    for name in modules:
        prefixes.setdefault(name.strip("_").split("_")[0], []).append(name)
    assert not [names for names in prefixes.values() if len(names) > 1], prefixes


def _defined_names(tree: ast.Module) -> Dict[str, ast.AST]:
    """The names a module defines at its top level (functions, classes, assignments), with their definitions."""
    out: Dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            out.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def _all_names(tree: ast.Module) -> List[str]:
    """A module's `__all__` (assignments and `+=` at its top level)."""
    names: List[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            names = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__":
            names += list(ast.literal_eval(node.value))
    return names


def public_name_problems(sources: Dict[str, Tuple[str, bool]]) -> List[str]:
    """What breaks "one name, one import path" in `sources` ({module: (source text, is a package __init__)}, the
    modules of g2d_edge).

    The public names are those of every `__all__` (g2d_edge's own, each sub-package's, each module's). Each has one
    home, the one module that defines it (def, class or assignment), and is not a plain alias of another name
    (`NEW = OLD`). Besides its home, a public name may be importable only from
    * `g2d_edge` itself, for the names of its `__all__` (and `from g2d_edge import X` works for nothing else), and
    * the `__init__` of its home's own package, when that package's `__all__` names it (the package's public face).
    Any other module that imports a public name and offers it again (lists it in its `__all__`, or imports it
    without using it: a re-export) is a second import path, a forwarding address.
    """
    trees = {m: ast.parse(text) for m, (text, _) in sources.items()}
    defined = {m: _defined_names(tree) for m, tree in trees.items()}
    alls = {m: _all_names(tree) for m, tree in trees.items()}
    public = {name for names in alls.values() for name in names} - {"__version__"}
    problems = []
    homes: Dict[str, List[str]] = {}
    for module, names in defined.items():
        for name in names.keys() & public:
            if module != "g2d_edge":
                homes.setdefault(name, []).append(module)
            value = getattr(names[name], "value", None)
            if isinstance(value, (ast.Name, ast.Attribute)):
                problems.append(f"{module}.{name} is an alias of another name (`{name} = {ast.unparse(value)}`)")
    for name in sorted(public):
        if len(homes.get(name, [])) != 1:
            problems.append(f"public name {name} is defined in {len(homes.get(name, []))} modules: "
                            f"{', '.join(homes.get(name, [])) or 'none'}")
    for module, tree in trees.items():
        is_package = sources[module][1]
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        for node in tree.body:
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            source = _targets(module, is_package, node, {})[0]  # the module imported from (absolute)
            for alias in node.names:
                name = alias.asname or alias.name
                home = (homes.get(alias.name) or [source])[0]
                if module == "g2d_edge":
                    if name not in alls[module]:
                        problems.append(f"g2d_edge offers {name}, which is not in its __all__ (import it from {home})")
                elif name not in public or (name in used and name not in alls[module]):
                    continue  # not public, or imported for this module's own use
                elif not (is_package and home.rpartition(".")[0] == module and name in alls[module]):
                    problems.append(f"{module} re-exports {name} (its one home is {home})")
    return problems


def _runtime_sources() -> Dict[str, Tuple[str, bool]]:
    return {m: (p.read_text(encoding="utf-8"), p.name == "__init__.py") for m, p in _modules().items()
            if m.split(".")[0] == "g2d_edge"}


def test_every_public_name_has_one_import_path():
    problems = public_name_problems(_runtime_sources())
    assert not problems, "one name, one import path (README 'Changelog' says where names live):\n" + \
        "\n".join(problems)


def test_the_one_import_path_rule_catches_forwarding_addresses():
    """A re-export, an alias kept under an old name, a package face naming another package's name and an extra name
    at the top are each caught (a checker that saw nothing would pass every layout)."""
    sources = _runtime_sources()
    assert {"Match", "FaceDetector", "Gallery", "MaskFlag"} <= {n for m in sources for n in _all_names(
        ast.parse(sources[m][0]))}

    def planted(module: str, code: str) -> List[str]:
        changed = dict(sources)
        changed[module] = (changed[module][0] + code, changed[module][1])
        return public_name_problems(changed)

    assert planted("g2d_edge.recognizer", "from .gallery.protocol import Match  # kept importable here\n") == \
        ["g2d_edge.recognizer re-exports Match (its one home is g2d_edge.gallery.protocol)"]
    assert planted("g2d_edge.detectors.detect", "OldOptions = DetectorOptions\n__all__ += ['OldOptions']\n") == \
        ["g2d_edge.detectors.detect.OldOptions is an alias of another name (`OldOptions = DetectorOptions`)"]
    assert planted("g2d_edge.video", "from ..gallery.protocol import Match\n__all__ += ['Match']\n") == \
        ["g2d_edge.video re-exports Match (its one home is g2d_edge.gallery.protocol)"]
    assert planted("g2d_edge", "from .errors import InputError\n") == \
        ["g2d_edge offers InputError, which is not in its __all__ (import it from g2d_edge.errors)"]
