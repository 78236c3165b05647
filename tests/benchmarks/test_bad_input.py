"""The hand-run benchmarks refuse bad arguments with one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("script", "args", "message"), [
    ("efficiency.py", ("--epochs", "0", "--out", "{tmp}"), "--epochs must be at least 1, got 0"),
    ("efficiency.py", ("--train-subset", "1", "--out", "{tmp}"),
     "--train-subset must be at least 2, got 1"),
    ("efficiency.py", ("--shapes-files", "10", "--out", "{tmp}"),
     "--shapes-files must be at least 40, got 10"),
    ("heldout.py", ("{tmp}",), "no runs with a logged best configuration under {tmp}"),
    ("recipes.py", ("--tasks", "cifar"), "argument --tasks: invalid choice: 'cifar'"),
    ("efficiency_summary.py", ("{tmp}",), "no efficiency-*.jsonl logs under {tmp}"),
    ("tracking_cost.py", ("--epochs", "0"), "--epochs must be at least 1, got 0"),
    ("tracking_cost.py", ("--pruner", "asha"), "argument --pruner: invalid choice: 'asha'"),
    ("warm_start.py", ("--budget", "0", "--workdir", "{tmp}/w"),
     "--budget must be a share of the cold search's epochs in (0, 1], got 0"),
])
def test_benchmark_refuses_bad_arguments(tmp_path: Path, script: str, args: tuple[str, ...],
                                         message: str) -> None:
    result = run(script, *(a.format(tmp=tmp_path) for a in args))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message.format(tmp=tmp_path) in result.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())  # nothing run, nothing written
