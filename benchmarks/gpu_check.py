"""GPU check, a few minutes on any CUDA machine: python benchmarks/gpu_check.py

Checks: --device auto picks CUDA; training runs under bf16 autocast; memory is handed back
between trials; and --jobs k on k GPUs (k = min(2, GPUs)) puts worker i on GPU i and stops at
exactly the target. Without CUDA it prints why and exits 0. Written without a GPU at hand:
untested on GPU so far.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import torch

from model_space import SearchSpace, build_model, sample_config
from search.data.options import DataOptions
from search.data.registry import load_bundle
from search.training.device import resolve_device
from search.training.loop import autocast
from search.training.objective import Objective
from search.training.workers import free_device_memory

TRIALS = 12


def check_auto_and_bf16() -> torch.device:
    device = resolve_device("auto")
    assert device.type == "cuda", f"--device auto chose {device}, not CUDA"
    data = load_bundle(DataOptions())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study().ask()
    model = build_model(sample_config(trial, SearchSpace()), data.input_shape,
                        data.n_classes).to(device)
    with autocast(device):
        out = model(torch.zeros((4, *data.input_shape), device=device))
    assert out.dtype == torch.bfloat16, f"autocast gave {out.dtype}, not bfloat16"
    print(f"ok: --device auto -> {device}; forward under autocast gives {out.dtype}")
    return device


def check_memory_freed(device: torch.device) -> None:
    data = load_bundle(DataOptions())
    study = optuna.create_study(direction="maximize")
    objective = Objective(data, SearchSpace(), 2, 0, device)
    free_device_memory(device)
    before = torch.cuda.memory_allocated(device)
    for _ in range(3):
        study.optimize(objective, n_trials=1)
        free_device_memory(device)
        left = torch.cuda.memory_allocated(device) - before
        reserved = torch.cuda.memory_reserved(device)
        assert left <= 1 << 20, f"{left} bytes still allocated after a trial"
        print(f"ok: after trial {study.trials[-1].number}: {left} B left allocated, "
              f"{reserved} B reserved")


def check_jobs_per_gpu() -> None:
    k = min(2, torch.cuda.device_count())
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'gpu.db'}"
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "search.run", "--trials", str(TRIALS),
                              "--epochs", "4", "--jobs", str(k), "--device", "auto",
                              "--storage", url, "--study", "gpu", "--quiet"],
                             text=True, capture_output=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        study = optuna.load_study(study_name="gpu", storage=url)
        devices = Counter(t.user_attrs.get("device") for t in study.trials)
        done = sum(t.state.is_finished() and t.state.name != "FAIL" for t in study.trials)
    assert done == TRIALS, f"{done} finished trials, not {TRIALS}"
    assert set(devices) == {f"cuda:{i}" for i in range(k)}, f"devices used: {dict(devices)}"
    print(f"ok: --jobs {k}: {done} trials in {time.perf_counter() - started:.1f} s on "
          f"{dict(devices)}")


def main() -> int:
    if not torch.cuda.is_available():
        print("skipped: no CUDA device here (this check has not yet been run on a GPU)")
        return 0
    print(f"{torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}")
    device = check_auto_and_bf16()
    check_memory_freed(device)
    check_jobs_per_gpu()
    return 0


if __name__ == "__main__":
    sys.exit(main())
