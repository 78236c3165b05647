"""TensorBoard, read back through its own EventAccumulator: a folder per finished trial with its
curves and one HParams session (parameters, state, status)."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState
from tensorboard.plugins.hparams import api_pb2

from search.schema import TRAIN_LOSSES
from tests.helpers.tracking import event_folders, scalars, session
from tests.search.tracking.conftest import Tracked

STATUS = {TrialState.COMPLETE: (api_pb2.STATUS_SUCCESS, "complete"),
          TrialState.PRUNED: (api_pb2.STATUS_UNKNOWN, "pruned"),
          TrialState.FAIL: (api_pb2.STATUS_FAILURE, "failed")}


def test_tensorboard_tracker_writes_one_folder_per_trial(tracked: Tracked) -> None:
    folders = event_folders(tracked.folder / "runs" / "tracked")
    # Rule: each trial the study holds, failed ones too, is one folder runs/<study>/trial-N.
    assert sorted(folders) == [f"trial-{t.number}" for t in tracked.study.trials]


def test_tensorboard_tracker_writes_curves_and_sizes_as_scalars(tracked: Tracked) -> None:
    folders = event_folders(tracked.folder / "runs" / "tracked")
    for trial in tracked.study.trials:
        events = folders[f"trial-{trial.number}"]
        # Rule: every epoch's val_accuracy and train_loss at its epoch's step; the model's size
        # at step 0, so that the HParams table shows it beside the accuracy.
        assert scalars(events, "val_accuracy") == pytest.approx(trial.intermediate_values)
        losses = trial.user_attrs.get(TRAIN_LOSSES, [])
        assert scalars(events, "train_loss") == pytest.approx({i + 1: v for i, v in enumerate(losses)})
        assert scalars(events, "n_params") == {0: trial.user_attrs["n_params"]}


def test_tensorboard_tracker_writes_one_hparams_session_per_trial(tracked: Tracked) -> None:
    folders = event_folders(tracked.folder / "runs" / "tracked")
    assert {t.state for t in tracked.study.trials} == set(STATUS)  # the premise
    for trial in tracked.study.trials:
        hparams, status = session(folders[f"trial-{trial.number}"])
        expected_status, state = STATUS[trial.state]
        # Rule: the session holds the trial's parameters (its own: SGD's momentum only where
        # SGD was drawn) and its state; its status says how it ended.
        assert hparams == pytest.approx({**trial.params, "state": state})
        assert status == expected_status
