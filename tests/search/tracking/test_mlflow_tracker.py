"""MLflow, read back through MlflowClient: one study run, one nested run per finished trial with
its parameters, per-epoch curves, state and sizes; the report's files on the study run."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from search import report
from search.schema import FAIL_REASON, TRACKING_ID_ATTR, TRAIN_LOSSES
from tests.helpers.tracking import history, mlflow_runs
from tests.search.tracking.conftest import Tracked

STATUS = {TrialState.COMPLETE: ("FINISHED", "complete"), TrialState.PRUNED: ("KILLED", "pruned"),
          TrialState.FAIL: ("FAILED", "failed")}


def test_mlflow_tracker_nests_one_run_per_trial_in_one_study_run(tracked: Tracked) -> None:
    runs = mlflow_runs(tracked.mlflow_uri, "tracked")
    # Rule: two runs of one study log into one study run, found again by the study's id.
    assert len(runs.parents) == 1
    parent = runs.parents[0]
    assert parent.data.tags["cnn_search.study_id"] == tracked.study.user_attrs[TRACKING_ID_ATTR]
    # Rule: every trial the study holds, failed ones too, is one run nested in the study run.
    numbers = [t.number for t in tracked.study.trials]
    assert sorted(runs.trials) == numbers == [0, 1, 2, 3]
    for number, found in runs.trials.items():
        assert len(found) == 1
        assert found[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert found[0].info.run_name == f"trial-{number}"


def test_mlflow_tracker_logs_params_curves_and_sizes(tracked: Tracked) -> None:
    runs = mlflow_runs(tracked.mlflow_uri, "tracked")
    for trial in tracked.study.trials:
        (run,) = runs.trials[trial.number]
        # Rule: a trial's run holds its parameters, every epoch's val_accuracy and train_loss
        # as steps, and its size, speed and device.
        assert run.data.params == {k: str(v) for k, v in trial.params.items()}
        assert history(runs.client, run, "val_accuracy") == pytest.approx(trial.intermediate_values)
        losses = trial.user_attrs.get(TRAIN_LOSSES, [])
        assert history(runs.client, run, "train_loss") == pytest.approx(
            {i + 1: v for i, v in enumerate(losses)})
        assert run.data.metrics["n_params"] == trial.user_attrs["n_params"]
        assert run.data.tags["device"] == "cpu"
        if trial.state != TrialState.FAIL:
            assert sorted(history(runs.client, run, "val_accuracy")) == list(
                range(1, trial.user_attrs["epochs_run"] + 1))
            assert run.data.metrics["seconds_per_epoch"] == trial.user_attrs["seconds_per_epoch"]


def test_mlflow_tracker_marks_pruned_and_failed_trials(tracked: Tracked) -> None:
    runs = mlflow_runs(tracked.mlflow_uri, "tracked")
    states = {t.state for t in tracked.study.trials}
    assert states == set(STATUS)  # the premise: one trial of each kind
    for trial in tracked.study.trials:
        (run,) = runs.trials[trial.number]
        status, state = STATUS[trial.state]
        # Rule: a pruned trial is tagged pruned (status KILLED), a failed one failed (FAILED)
        # with its reason.
        assert (run.info.status, run.data.tags["state"]) == (status, state)
        if trial.state == TrialState.FAIL:
            assert run.data.tags[FAIL_REASON] == trial.user_attrs[FAIL_REASON]


def test_mlflow_tracker_finishes_the_study_run_with_the_spec(tracked: Tracked) -> None:
    (parent,) = mlflow_runs(tracked.mlflow_uri, "tracked").parents
    # Rule: the study run carries the study's spec, and is finished once the target is reached.
    assert parent.info.status == "FINISHED"
    assert parent.data.params["dataset"] == "digits"
    assert parent.data.params["space.lr"] == "[1e-07, 10000000000.0]"


def test_report_attaches_its_files_to_a_tracked_study_run(tracked: Tracked,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tracked.folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracked.mlflow_uri)
    assert report.main(["--study", "tracked", "--storage", f"sqlite:///{tracked.folder}/study.db",
                        "--seeds", "1", "--device", "cpu"]) == 0
    runs = mlflow_runs(tracked.mlflow_uri, "tracked")
    (parent,) = runs.parents
    files = {a.path for a in runs.client.list_artifacts(parent.info.run_id)}
    plots = {a.path for a in runs.client.list_artifacts(parent.info.run_id, "plots")}
    # Rule: a study run with --track mlflow gets its report without asking: the best
    # configuration, the test metrics, the model (all three formats) and the plots.
    assert {"best_config.json", "metrics.json", "model.pt", "model.pt2", "model.onnx", "plots"} <= files
    assert "plots/confusion_matrix.png" in plots
    assert 0 < parent.data.metrics["test_accuracy_mean"] <= 1
