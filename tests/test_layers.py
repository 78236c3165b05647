"""The layers a newcomer sees in the folder tree hold in the code: commands on top and imported
by nothing, the study and strategy layers free of torch, every --help fast."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "report", "retrain", "predict", "dashboard")
COMMAND_MODULES = {f"search.{name}" for name in COMMANDS} | {"search.__main__"}
# Modules that must load without torch: storage and execution, strategy, the trackers, the
# shared small modules, and what --help or the dashboard needs.
TORCH_FREE = (
    "model_space",
    "search.cli",
    "search.errors",
    "search.schema",
    "search.hints",
    "search.interrupts",
    "search.optuna_private",
    "search.data.options",
    "search.data.format",
    "search.results.artifacts",
    "search.dashboard",
    *sorted(f"search.{folder}.{path.stem}" for folder in ("study", "strategy", "tracking")
            for path in (ROOT / "search" / folder).glob("*.py") if path.stem != "__init__"),
)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (``from a import b`` counts
    as both a and a.b, since b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _library_files() -> list[Path]:
    files = sorted((ROOT / "search").rglob("*.py")) + sorted((ROOT / "model_space").rglob("*.py"))
    return [p for p in files if _module(p) not in COMMAND_MODULES]


def test_layers_no_library_module_imports_a_command() -> None:
    # Rule: commands sit on top; no module below them imports one (search.__main__ may: it is a
    # command itself).
    slips = {_module(p): sorted(_imports(p) & COMMAND_MODULES) for p in _library_files()}
    assert {module: hit for module, hit in slips.items() if hit} == {}


@pytest.mark.parametrize("folder", ["study", "strategy"])
def test_layers_study_and_strategy_import_no_training_results_or_loading(folder: str) -> None:
    # Rule: data flows down. The study and strategy layers never reach up into training or
    # results, nor into the torch side of data.
    above = ("search.training", "search.results", "search.data.registry", "search.data.imagefolder",
             "search.data.images", "search.data.torchvision_sets", "torch", "torchvision")
    slips = {}
    for path in sorted((ROOT / "search" / folder).glob("*.py")):
        hits = sorted(m for m in _imports(path) if m.startswith(above))
        if hits:
            slips[_module(path)] = hits
    assert slips == {}


def _loaded_by(code: str) -> dict[str, bool]:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_layers_torch_free_modules_load_without_torch() -> None:
    # One process, modules imported one at a time: the first that pulls torch in is named.
    code = ("import importlib, json, sys\n"
            f"out = {{}}\nfor name in {list(TORCH_FREE)!r}:\n"
            "    importlib.import_module(name)\n"
            "    out[name] = 'torch' in sys.modules\n"
            "    if out[name]: break\n"
            "print(json.dumps(out))")
    loaded = _loaded_by(code)
    # Rule: storage, execution and strategy modules (and the dashboard) never import torch.
    assert [name for name, torch_in in loaded.items() if torch_in] == []
    assert len(loaded) == len(TORCH_FREE)


@pytest.mark.parametrize("command", [*COMMANDS, "__main__"])
def test_layers_help_answers_without_torch(command: str) -> None:
    code = ("import json, sys, contextlib, io\n"
            f"from search import {command} as command\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        command.main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'usage': 'usage' in out.getvalue()}))")
    loaded = _loaded_by(code)
    # Rule: --help prints the usage without importing torch (seconds of start-up saved).
    assert loaded == {"torch": False, "usage": True}


def test_layers_dashboard_serving_imports_no_torch() -> None:
    code = ("import json, sys\nimport search.dashboard\nimport optuna_dashboard\n"
            "from search.study.storage import open_user_storage\n"
            "print(json.dumps({'torch': 'torch' in sys.modules}))")
    # Rule: the dashboard, server included, never imports torch.
    assert _loaded_by(code) == {"torch": False}
