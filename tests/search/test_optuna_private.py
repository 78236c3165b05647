"""Each use of Optuna's private API (search.optuna_private), checked against the installed
Optuna: a 5.x release that moves or changes one fails the test of that name."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search import optuna_private as private


def _sqlite_study(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(study_name="p", storage=f"sqlite:///{tmp_path}/p.db",
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    pruned = study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    study.ask()  # left RUNNING
    return study


def test_storage_of_and_study_id_name_the_study(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    storage = private.storage_of(study)
    # Rule: the study writes through a storage that knows it by this id.
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert private.study_id(study) == storage.get_study_id_from_name("p")


def test_trial_id_is_the_storage_id_of_a_frozen_trial(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    storage = private.storage_of(study)
    for trial in study.get_trials(deepcopy=False):
        # Rule: a frozen trial's id is the one the storage reads it by.
        assert storage.get_trial(private.trial_id(trial)).number == trial.number


def test_rdb_backend_under_the_trial_cache(tmp_path: Path) -> None:
    # Rule: a database study has its RDBStorage under Optuna's cache; an in-memory one has none.
    assert isinstance(private.rdb_backend(_sqlite_study(tmp_path)), RDBStorage)
    assert private.rdb_backend(optuna.create_study()) is None


def test_count_by_state_matches_reading_every_trial(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    counts = private.count_by_state(private.rdb_backend(study), study)
    # Rule: the COUNT query over Optuna's trial table agrees with the trials read one by one.
    assert counts == Counter(t.state for t in study.get_trials(deepcopy=False))
    assert counts[TrialState.COMPLETE] == 3 and counts[TrialState.RUNNING] == 1


def test_trial_logger_is_where_optuna_reports_a_failed_trial(caplog: pytest.LogCaptureFixture) -> None:
    def fails(trial: optuna.Trial) -> float:
        raise RuntimeError("boom")

    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger=private.TRIAL_LOGGER):
            optuna.create_study().optimize(fails, n_trials=1, catch=(RuntimeError,))
    finally:
        optuna.logging.disable_propagation()
    # Rule: Optuna writes "Trial N failed ..." through the logger whose tracebacks we trim.
    assert any(r.name == private.TRIAL_LOGGER and "Trial 0 failed" in r.getMessage()
               for r in caplog.records)


def test_tpe_module_has_the_gammas_and_the_split(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    module = private.TPE_MODULE
    # Rule: the default gammas give a count, and _split_trials splits finished trials in two.
    assert module.default_gamma(10) == 1 and module.default_gamma_multiobjective(10) >= 1
    below, above = module._split_trials(study, trials, 1)
    assert len(below) == 1 and below[0].value == max(t.value for t in trials if t.value is not None)
    assert len(below) + len(above) == len(trials)


def test_search_space_group_groups_parameters_seen_together() -> None:
    group = private.SearchSpaceGroup()
    x = optuna.distributions.FloatDistribution(0, 1)
    y = optuna.distributions.IntDistribution(0, 3)
    group.add_distributions({"x": x})
    group.add_distributions({"x": x, "y": y})
    # Rule: parameters that do not always occur together land in separate groups.
    assert sorted(sorted(space) for space in group.search_spaces) == [["x"], ["y"]]


def test_artifact_store_protocol_is_where_optuna_keeps_it() -> None:
    # Rule: the type search.results.artifacts annotates with still exists (it is only imported
    # for type checking there, so nothing else would notice it moving).
    from optuna.artifacts._protocol import ArtifactStore

    assert callable(getattr(ArtifactStore, "open_reader", None))


def test_system_attrs_and_reported_steps_of_a_running_trial() -> None:
    study = optuna.create_study()
    # A queued retry, as Optuna's retry callback makes it, carrying its first attempt's values.
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                              system_attrs={"failed_trial": 7},
                                              intermediate_values={1: 0.5}))
    trial = study.ask()
    # Rule: a running Trial's system attrs and reported steps are read through its cached copy.
    assert private.system_attrs(trial)["failed_trial"] == 7
    assert private.reported_steps(trial) == {1}
    assert private.system_attrs(study.trials[0])["failed_trial"] == 7
