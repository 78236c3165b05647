"""Searching for a model that fits where it will run: limits, Pareto search, the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from search import report, run
from search.schema import (
    EPOCHS_RUN,
    FEASIBLE_START_ATTR,
    LATENCY_MS,
    MACS,
    N_PARAMS,
    OVER_LIMIT,
    VAL_CURVE,
)
from tests.helpers.configs import TINY_SPACE_TOML
from tests.helpers.studies import load, refused_in_one_line

TINY = ["--epochs", "3", "--config", "tiny.toml", "--quiet"]


def test_max_params_trains_nothing_over_the_limit(workdir: Path) -> None:
    # Rule: a model over --max-params is never trained: it ends pruned at step 0 with the
    # reason, and every trained trial fits.
    assert run.main(["--trials", "14", "--max-params", "1000", *TINY]) == 0
    trials = load(workdir / "studies" / "digits.db").get_trials(deepcopy=False)
    over = [t for t in trials if OVER_LIMIT in t.user_attrs]
    trained = [t for t in trials if t.user_attrs.get(EPOCHS_RUN, 0) > 0]
    assert over and trained
    for t in over:
        assert t.state == TrialState.PRUNED and not t.intermediate_values
        assert t.user_attrs[N_PARAMS] > 1000 and t.user_attrs[EPOCHS_RUN] == 0
        assert t.user_attrs[OVER_LIMIT] == f"n_params {t.user_attrs[N_PARAMS]:,} > max_params 1,000"
    assert all(t.user_attrs[N_PARAMS] <= 1000 for t in trained)
    assert all(MACS in t.user_attrs and t.user_attrs[LATENCY_MS] > 0 for t in trials)
    # The start-up trials get model shapes drawn within the limit: here the two that fit
    # (one block of 8 or 16 channels), each once, first.
    starts = [t for t in trials if t.user_attrs.get(FEASIBLE_START_ATTR)]
    assert [t.number for t in starts] == [0, 1]
    assert sorted(t.params["width_0"] for t in starts) == [8, 16]
    assert all(t.params["depth"] == 1 and t.user_attrs[EPOCHS_RUN] > 0 for t in starts)


@pytest.fixture(scope="module")
def pareto_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished val_accuracy-vs-n_params study of 16 trials, and its report."""
    root = tmp_path_factory.mktemp("pareto")
    (root / "tiny.toml").write_text(TINY_SPACE_TOML.replace("depth = [1, 2]", "depth = [1, 3]"))
    old = Path.cwd()
    os.chdir(root)
    try:
        assert run.main(["--trials", "16", "--objectives", "val_accuracy,n_params", *TINY]) == 0
        assert report.main(["--seeds", "1"]) == 0
    finally:
        os.chdir(old)
    return root


def test_multi_objective_study_stores_directions_and_prunes(pareto_study: Path) -> None:
    study = load(pareto_study / "studies" / "digits.db")
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "n_params"]
    trials = study.get_trials(deepcopy=False)
    # Pruning happened: a trained trial ended pruned before its last epoch.
    assert any(t.state == TrialState.PRUNED and 0 < len(t.user_attrs[VAL_CURVE]) < 3
               for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for t in complete:  # the values are the last epoch's accuracy and the measured cost
        assert t.values == [pytest.approx(t.user_attrs[VAL_CURVE][-1], abs=1e-6),
                            t.user_attrs[N_PARAMS]]


def test_the_front_is_non_dominated(pareto_study: Path) -> None:
    study = load(pareto_study / "studies" / "digits.db")
    front = study.best_trials
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for t in front:
        acc, cost = t.values
        assert not any(o.values[0] >= acc and o.values[1] <= cost and o.values != t.values
                       for o in complete)


def test_report_draws_the_front_and_explains_its_choice(pareto_study: Path) -> None:
    out = pareto_study / "reports" / "digits"
    assert (out / "plots" / "pareto_front.png").stat().st_size > 10_000
    text = (out / "report.md").read_text()
    assert "## Pareto front" in text and "→" in text
    best = json.loads((out / "best_config.json").read_text())["provenance"]
    study = load(pareto_study / "studies" / "digits.db")
    assert best["trial"] in [t.number for t in study.best_trials]
    assert best["costs"][N_PARAMS] == study.trials[best["trial"]].user_attrs[N_PARAMS]
    metrics = json.loads((out / "metrics.json").read_text())
    # The report measures the exported model again.
    assert metrics["n_params"] == best["costs"][N_PARAMS]
    assert metrics["macs"] == best["costs"][MACS] and metrics["latency_ms"] > 0
    # model.onnx gives the PyTorch model's answers on every test image under onnxruntime.
    assert (out / "model.onnx").is_file()
    assert metrics["onnx"]["ok"] and metrics["onnx"]["same_predictions"] == 1.0
    assert metrics["onnx"]["images"] == metrics["n_test"]


def test_report_exports_any_complete_trial(pareto_study: Path, monkeypatch) -> None:
    monkeypatch.chdir(pareto_study)
    study = load(pareto_study / "studies" / "digits.db")
    chosen = json.loads((pareto_study / "reports" / "digits" / "best_config.json").read_text())
    other = next(t for t in study.get_trials(states=(TrialState.COMPLETE,))
                 if t.number != chosen["provenance"]["trial"])
    assert report.main(["--seeds", "1", "--trial", str(other.number), "--out", "other"]) == 0
    exported = json.loads((pareto_study / "other" / "digits" / "best_config.json").read_text())
    assert exported["provenance"]["trial"] == other.number
    pruned = next(t for t in study.trials if t.state == TrialState.PRUNED)
    assert report.main(["--seeds", "1", "--trial", str(pruned.number), "--out", "bad"]) == 2
    assert not (pareto_study / "bad" / "digits").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--max-params", "0"], "'0'"),
        (["--max-latency-ms", "-1"], "'-1'"),
        (["--objectives", "val_accuracy,flops"], "'flops'"),
        (["--objectives", "n_params"], "'n_params'"),
        (["--max-params", "300"], "the smallest model of the space has n_params 418"),
        (["--max-macs", "10"], "max_macs 10 cannot be met"),
        (["--latency-device", "tpu"], "'tpu'"),
    ],
)
def test_bad_limits_are_one_line_exit_2_before_training(
    workdir: Path, capsys, args: list[str], named: str
) -> None:
    refused_in_one_line(["--trials", "2", *args, *TINY], named, workdir, capsys)


def test_a_spec_file_limit_is_checked_like_the_flag(workdir: Path, capsys) -> None:
    (workdir / "limits.toml").write_text("max_latency_ms = 0\n")
    assert run.main(["--trials", "2", "--config", "limits.toml", "--quiet"]) == 2
    assert "max_latency_ms must be a positive number but got 0" in capsys.readouterr().err
    assert not list(workdir.glob("studies/*.db"))


def test_a_resumed_study_keeps_its_limits(workdir: Path, capsys) -> None:
    assert run.main(["--trials", "2", "--max-params", "1000", *TINY]) == 0
    assert run.main(["--trials", "3", "--max-params", "2000", *TINY]) == 2
    assert "max_params=1000" in capsys.readouterr().err
    assert run.main(["--trials", "3", *TINY]) == 0  # the stored limit holds without the flag
    study = load(workdir / "studies" / "digits.db")
    assert all(t.user_attrs[N_PARAMS] <= 1000 for t in study.trials
               if t.user_attrs.get(EPOCHS_RUN, 0) > 0)
    assert isinstance(study, optuna.Study)
