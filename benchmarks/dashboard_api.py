"""How fast the dashboard's study API answers for a large study.

Builds a study of N trials shaped like a real search (params sampled from the default space,
a val_accuracy per epoch, the objective's user attrs, most pruned, a few failed) with a trivial
objective, copies it into SQLite, serves it with ``python -m search.dashboard`` and times
``GET /api/studies/<id>`` (everything the study page loads) from an HTTP client on localhost.

    python benchmarks/dashboard_api.py [--trials 1000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna

from model_space import SearchSpace, sample_config
from search.study.spec import StudySpec
from search.study.storage import default_storage, open_storage
from search.study.studies import load_or_create

EPOCHS = 8
NAME = "bench"


def fake_objective(trial: optuna.Trial) -> float:
    """No training: the same params, reports and user attrs as search.training.objective, made up."""
    config = sample_config(trial, SearchSpace())
    # A made-up accuracy curve that rises with the lr's distance from too small or too large.
    quality = math.exp(-abs(math.log10(config.lr) + 2.5)) * (0.9 + 0.02 * len(config.widths))
    trial.set_user_attr("n_params", 1000 * sum(config.widths))
    trial.set_user_attr("device", "cpu")
    if trial.number % 50 == 7:
        trial.set_user_attr("fail_reason", "loss is nan at epoch 2")
        raise RuntimeError("loss is nan at epoch 2")
    for epoch in range(EPOCHS):
        value = quality * (1 - 0.5 ** (epoch + 1))
        trial.report(value, epoch + 1)
        trial.set_user_attr("epochs_run", epoch + 1)
        trial.set_user_attr("seconds_per_epoch", 0.05)
        trial.set_user_attr("train_loss", 1 - value)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def build_study(root: Path, trials: int) -> int:
    """Run the fake search in memory (fast), then copy its trials into SQLite; returns study id."""
    memory = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                 pruner=optuna.pruners.SuccessiveHalvingPruner())
    memory.optimize(fake_objective, n_trials=trials, catch=(RuntimeError,))
    (root / "studies").mkdir()
    study = load_or_create(NAME, open_storage(default_storage(NAME, root / "studies")), StudySpec())
    study.add_trials(memory.get_trials(deepcopy=False))
    return study._study_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
    return time.perf_counter() - started


def wait_until_up(base: str) -> None:
    for _ in range(1200):
        try:
            urllib.request.urlopen(f"{base}/api/meta", timeout=5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"dashboard at {base} did not start")


# optuna-dashboard keeps a study's trials for 10 s (studies of 500+ trials), then reads them again.
DASHBOARD_TTL_S = 10


def measure(command: list[str], root: Path, study_id: int, repeats: int) -> dict[str, float]:
    """Seconds for the first request, cached repeats, and requests after the cache expired."""
    port = free_port()
    server = subprocess.Popen([*command, "--port", str(port)], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base)
        url = f"{base}/api/studies/{study_id}"
        first = timed_get(url)
        warm = [timed_get(url) for _ in range(repeats)]
        expired = []
        for _ in range(3):
            time.sleep(DASHBOARD_TTL_S + 0.5)
            expired.append(timed_get(url))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {"first": first, "cached": statistics.median(warm), "expired": max(expired)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    plain = str(Path(sys.executable).parent / "optuna-dashboard")
    commands = {
        "python -m search.dashboard": [sys.executable, "-m", "search.dashboard", "--study", NAME],
        "optuna-dashboard (plain)": [plain, default_storage(NAME)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        study_id = build_study(root, args.trials)
        size = (root / "studies" / f"{NAME}.db").stat().st_size
        print(f"built a {args.trials}-trial study ({size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - started:.0f} s")
        print(f"GET /api/studies/{study_id}, seconds: first request | median of {args.repeats} "
              "cached | worst of 3 after the dashboard's 10 s cache expired")
        for label, command in commands.items():
            t = measure(command, root, study_id, args.repeats)
            print(f"  {label:28s} {t['first']:.2f} | {t['cached']:.2f} | {t['expired']:.2f}")


if __name__ == "__main__":
    main()
