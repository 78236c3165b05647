from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from search.data.registry import DataBundle
from search.strategy.samplers import PRUNER_NAMES, PRUNERS, SAMPLER_NAMES, SAMPLERS
from search.study.spec import StudySpec
from search.study.storage import HEARTBEAT_INTERVAL, create_user_storage, mask_url, open_storage
from search.study.studies import load_or_create, stored_spec
from search.training.objective import Objective

TINY = StudySpec.from_flat({"epochs": 2, "space": {"depth": [1, 2], "widths": [8, 16],
                                                    "batch_sizes": [64]}})


def test_tables_match_the_cli_choices() -> None:
    # Rule: every name the CLI offers has a factory, and nothing else does.
    assert set(SAMPLERS) == set(SAMPLER_NAMES)
    assert set(PRUNERS) == set(PRUNER_NAMES)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_runs_a_short_study(tiny: DataBundle, tmp_path: Path, sampler: str) -> None:
    # Rule: each sampler in the table drives real trials on a real SQLite study.
    spec = StudySpec(data=TINY.data, epochs=1, sampler=sampler, pruner="none", space=TINY.space)
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = load_or_create("s", storage, spec)
    study.optimize(Objective(tiny, spec.space, spec.epochs, 0, torch.device("cpu")), n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


@pytest.mark.parametrize("pruner", PRUNER_NAMES)
def test_every_pruner_accepts_reports(tiny: DataBundle, tmp_path: Path, pruner: str) -> None:
    # Rule: each pruner in the table runs with per-epoch reports; trials finish or are pruned.
    spec = StudySpec(data=TINY.data, epochs=3, pruner=pruner, space=TINY.space)
    storage = open_storage(f"sqlite:///{tmp_path / 'p.db'}")
    study = load_or_create("p", storage, spec)
    study.optimize(Objective(tiny, spec.space, spec.epochs, 0, torch.device("cpu")), n_trials=4)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert all(t.intermediate_values for t in study.trials)


def test_load_or_create_stores_the_spec_once(tmp_path: Path) -> None:
    # Rule: a new study records its spec and metric name; reopening it keeps both.
    storage = open_storage(f"sqlite:///{tmp_path / 'x.db'}")
    study = load_or_create("x", storage, TINY)
    assert stored_spec(storage, "x") == TINY.to_flat()
    again = load_or_create("x", storage, TINY)
    assert again._study_id == study._study_id
    assert again.metric_names == ["val_accuracy"]


def _journal_mode(storage: optuna.storages.RDBStorage) -> str:
    with storage.engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA journal_mode").scalar()


def test_new_sqlite_storage_uses_wal_and_another_file_keeps_its_mode(tmp_path: Path) -> None:
    # Rule: a SQLite file the search creates runs in WAL mode, so readers never block the
    # writer; a file it did not create (a plain Optuna study) keeps its own journal mode.
    assert _journal_mode(create_user_storage(f"sqlite:///{tmp_path / 'new.db'}")) == "wal"
    optuna.create_study(study_name="theirs", storage=f"sqlite:///{tmp_path / 'theirs.db'}")
    assert _journal_mode(open_storage(f"sqlite:///{tmp_path / 'theirs.db'}")) == "delete"


def test_mask_url_hides_passwords() -> None:
    # Rule: a password never appears in a printed storage URL.
    masked = mask_url("postgresql://user:s3cret@db.example:5432/optuna")
    assert "s3cret" not in masked and "user" in masked


def test_heartbeat_is_on_for_the_default_storage(tmp_path: Path) -> None:
    # Rule: RDB storages run heartbeats, so a killed worker's trial can be failed and retried.
    storage = open_storage(f"sqlite:///{tmp_path / 'h.db'}")
    assert is_heartbeat_enabled(storage)
    assert storage.get_heartbeat_interval() == HEARTBEAT_INTERVAL
