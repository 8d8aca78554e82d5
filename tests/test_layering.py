"""Imports flow one way: corrtrack (framework-free core) <- datamodules / lightning_modules / callbacks <-
experiments. Every ``import``, ``from ... import`` (also inside functions) and ``importlib.import_module`` /
``__import__`` call with a literal name is checked, so a lazy import cannot slip past. The same packages hold
no function over MAX_FUNCTION_LINES lines, and read PoseTrack JSON only through ``corrtrack.posetrack``."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf", "wandb", "hydra")
GLUE = ("datamodules", "lightning_modules", "callbacks", "experiments")

# package (or module prefix) -> top-level names it must never import
FORBIDDEN = {
    "corrtrack": GLUE + FRAMEWORKS,
    "datamodules": ("experiments", "lightning_modules", "callbacks"),
    "lightning_modules": ("experiments", "datamodules"),
    "callbacks": ("experiments", "datamodules"),
    "experiments.stages": ("experiments.run",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                    # relative: resolve against the package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if fname in ("import_module", "__import__"):
                out.append((node.lineno, node.args[0].value))
    return out


def _matches(name: str, banned: str) -> bool:
    return name == banned or name.startswith(banned + ".")


def violations(package: str, banned: tuple[str, ...]) -> list[str]:
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
    bad = []
    for f in files:
        for line, name in imported_names(f):
            for b in banned:
                if _matches(name, b):
                    bad.append(f"{f.relative_to(ROOT)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package):
    assert violations(package, FORBIDDEN[package]) == []


def test_the_scan_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "corrtrack" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "corrtrack" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text("import numpy\n"
                              "def f():\n"
                              "    from datamodules.pairs import x\n"
                              "    import importlib\n"
                              "    importlib.import_module('experiments.run')\n"
                              "from .. import keypoints\n"
                              "from omegaconf import OmegaConf\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    names = [n for _, n in imported_names(pkg / "m.py")]
    assert "corrtrack.keypoints" in names
    bad = violations("corrtrack", FORBIDDEN["corrtrack"])
    assert sorted(b.split(" imports ")[1] for b in bad) == ["datamodules.pairs", "datamodules.pairs.x",
                                                             "experiments.run", "omegaconf", "omegaconf.OmegaConf"]


# ------------------------------------------------------------------------------------------ function length

MAX_FUNCTION_LINES = 80
# (file, function) still over the limit: being split elsewhere; this list only shrinks
LONG_FUNCTIONS: set[tuple[str, str]] = set()


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    """(file, function, lines) of every function or method longer than ``limit`` lines (decorators and
    docstring included) in the project's packages."""
    out = []
    for package in ("corrtrack",) + GLUE:
        for f in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    n = node.end_lineno - first + 1
                    if n > limit:
                        out.append((f.relative_to(root).as_posix(), node.name, n))
    return out


def test_no_function_is_longer_than_the_limit():
    found = long_functions(ROOT)
    too_long = [f for f in found if (f[0], f[1]) not in LONG_FUNCTIONS]
    assert too_long == [], f"split these into named helpers (at most {MAX_FUNCTION_LINES} lines each)"
    stale = LONG_FUNCTIONS - {(f[0], f[1]) for f in found}
    assert not stale, f"no longer over the limit: remove from LONG_FUNCTIONS: {sorted(stale)}"


def test_the_length_scan_counts_nested_functions_and_methods(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "corrtrack").mkdir()
    nested = body.replace("    ", "        ")
    (tmp_path / "corrtrack" / "m.py").write_text(
        f"def short():\n    return 1\n\n\nclass A:\n    @staticmethod\n    def long():\n{nested}\n"
        f"\n\ndef outer():\n    def inner():\n{nested}\n    return inner\n")
    found = long_functions(tmp_path)
    assert {(name, n) for _, name, n in found} == {
        ("long", MAX_FUNCTION_LINES + 2), ("outer", MAX_FUNCTION_LINES + 3), ("inner", MAX_FUNCTION_LINES + 1)}


# ------------------------------------------------------------------------------------------ JSON reading

# files outside corrtrack/posetrack/ that parse JSON, each a kind that is not a PoseTrack file
OTHER_JSON = {
    "corrtrack/checkpoints.py": "a run's summary.json",
    "corrtrack/weights.py": "a run's summary.json, the weights manifest",
    "corrtrack/evaluation/bench.py": "poseval's and corrtrack.evaluate's metric files",
    "corrtrack/synth/world.py": "the world's world.json marker",
    "corrtrack/synth/preview.py": "the synthetic world's COCO annotations",
    "experiments/run.py": "a run's summary.json",
    "experiments/gpu_summary.py": "the GPU check's benchmark results and a run's summary.json",
    "experiments/sweep.py": "corrtrack.track's results/table.json, a run's summary.json",
    "experiments/reproduce.py": "its own plan.json / steps.json, the steps' tables.json, propagation.json, summary.json",
    "experiments/results_doc.py": "the reproduce steps' steps.json, tables.json, best.json, propagation.json, "
                                  "corrtrack.track's results/table.json, runs' summary.json",
}


def json_readers(root: Path) -> dict[str, list[int]]:
    """{file: lines} of the ``json.load`` / ``json.loads`` calls in the packages outside corrtrack/posetrack/."""
    out: dict[str, list[int]] = {}
    for package in ("corrtrack",) + GLUE:
        for f in sorted((root / package).rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel.startswith("corrtrack/posetrack/"):
                continue
            for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in ("load", "loads") and isinstance(node.func.value, ast.Name) \
                        and node.func.value.id in ("json", "orjson", "ujson"):
                    out.setdefault(rel, []).append(node.lineno)
    return out


def test_posetrack_json_is_parsed_only_in_corrtrack_posetrack():
    found = json_readers(ROOT)
    assert sorted(set(found) - set(OTHER_JSON)) == [], \
        "read PoseTrack files through corrtrack.posetrack (load_sequence, load_folder, load_detections, read_json)"
    assert sorted(set(OTHER_JSON) - set(found)) == [], "no longer reads JSON: remove from OTHER_JSON"
