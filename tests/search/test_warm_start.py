"""Warm starts: a new study's first trials are an earlier study's best configurations."""

from __future__ import annotations

import hashlib
import math
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from search import report, run
from search.errors import UsageError
from search.schema import WARM_START_ATTR
from search.study.spec import StudySpec
from search.study.storage import open_user_storage
from search.study.studies import load_or_create
from search.study.warm_start import split_source
from tests.helpers.configs import TINY_SPACE_TOML
from tests.helpers.studies import load

# No pruning: every trial of the earlier study completes, so its ranking is all of them.
TINY = ["--epochs", "1", "--config", "tiny.toml", "--quiet", "--pruner", "none"]
SOURCE_TRIALS = 8


@pytest.mark.parametrize(("text", "name", "url"), [
    ("shapes-2000", "shapes-2000", "sqlite:///studies/shapes-2000.db"),
    ("digits@sqlite:///elsewhere/all.db", "digits", "sqlite:///elsewhere/all.db"),
    # The URL's own '@' (a user name) stays in the URL: study names hold none.
    ("s@postgresql://postgres@127.0.0.1:5432/test", "s", "postgresql://postgres@127.0.0.1:5432/test"),
    ("s@mysql+pymysql://u:secret@db.example:3306/optuna", "s",
     "mysql+pymysql://u:secret@db.example:3306/optuna"),
])
def test_split_source_names_the_study_and_its_storage(text: str, name: str, url: str) -> None:
    assert split_source(text) == (name, url)


@pytest.mark.parametrize(("text", "named"), [
    ("s@studies/s.db", "studies/s.db"),  # a path, not a URL
    ("@sqlite:///a.db", "''"),
    ("../escape", "../escape"),
])
def test_split_source_refuses_what_is_not_a_study_and_a_url(text: str, named: str) -> None:
    with pytest.raises(UsageError, match=re.escape(named)):
        split_source(text)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 8-trial study 'src' on the digits in the tiny space; copied into each test."""
    root = tmp_path_factory.mktemp("warm")
    (root / "tiny.toml").write_text(TINY_SPACE_TOML)
    old = Path.cwd()
    os.chdir(root)
    try:
        assert run.main(["--trials", str(SOURCE_TRIALS), "--study", "src", *TINY]) == 0
    finally:
        os.chdir(old)
    return root / "studies" / "src.db"


@pytest.fixture()
def src(workdir: Path, source: Path) -> Path:
    (workdir / "studies").mkdir()
    copy = workdir / "studies" / "src.db"
    # The backup API, not a file copy: the study's last commits may still be in its WAL file.
    with closing(sqlite3.connect(source)) as old, closing(sqlite3.connect(copy)) as new:
        old.backup(new)
    return copy


def ranked(db: Path) -> list[FrozenTrial]:
    trials = load(db, "src").get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: (-t.values[0], t.number))


def test_warm_start_first_trials_are_the_source_best(src: Path, capsys) -> None:
    # Rule: the earlier study's best K configurations, best first, are the new study's first
    # trials, each marked with where it came from; the earlier study is only read.
    before = _digest(src)
    assert run.main(["--trials", "4", "--study", "new", "--seed", "1", "--warm-start", "src",
                     "--warm-start-top", "3", *TINY]) == 0
    out = capsys.readouterr().out
    assert ("warm start from study 'src' (sqlite:///studies/src.db): 3 configurations enqueued "
            "(0 fitted into this space, 0 skipped)") in out
    trials = load(src.parent / "new.db", "new").trials
    best = ranked(src)[:3]
    assert [t.params for t in trials[:3]] == [t.params for t in best]
    assert [t.user_attrs.get(WARM_START_ATTR) for t in trials] == [
        f"src#{t.number}" for t in best] + [None]
    assert _digest(src) == before


def test_warm_start_fits_or_skips_in_a_narrower_space(src: Path, capsys) -> None:
    # Rule: in a space that allows only adam and adamw, lr in [1e-3, 1e-2] and widths 12 or 32:
    # sgd and rmsprop configurations are skipped, the others enqueued with lr clipped and each
    # width at its nearest choice (log scale: 8 and 16 -> 12), best first.
    (src.parent.parent / "narrow.toml").write_text(
        '[space]\ndepth = [1, 2]\nwidths = [12, 32]\nbatch_sizes = [64]\n'
        'optimizers = ["adam", "adamw"]\nlr = [1e-3, 1e-2]\n')
    source_trials = ranked(src)
    kept = [t for t in source_trials if t.params["optimizer"] in ("adam", "adamw")]
    assert 0 < len(kept) < len(source_trials)  # the fixture's draws have both kinds
    assert run.main(["--trials", str(len(kept)), "--study", "new", "--epochs", "1", "--quiet",
                     "--pruner", "none", "--config", "narrow.toml", "--warm-start", "src",
                     "--warm-start-top", str(SOURCE_TRIALS)]) == 0
    skipped = len(source_trials) - len(kept)
    assert (f"{len(kept)} configurations enqueued ({len(kept)} fitted into this space, "
            f"{skipped} skipped)") in capsys.readouterr().out
    trials = load(src.parent / "new.db", "new").trials
    for new, old in zip(trials, kept, strict=True):
        assert new.user_attrs[WARM_START_ATTR] == f"src#{old.number}"
        assert new.params["optimizer"] == old.params["optimizer"]
        assert new.params["lr"] == min(max(old.params["lr"], 1e-3), 1e-2)
        depth = old.params["depth"]
        assert [new.params[f"width_{i}"] for i in range(depth)] == [12] * depth
        assert math.isclose(new.params["dropout"], old.params["dropout"])


def test_warm_start_is_ignored_by_a_study_with_trials(src: Path, capsys) -> None:
    # Rule: a resumed study goes on from its own trials; one note line says so.
    assert run.main(["--trials", "1", "--study", "new", *TINY]) == 0
    capsys.readouterr()
    assert run.main(["--trials", "2", "--study", "new", "--warm-start", "src", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "warm start from 'src' ignored: study 'new' already has 1 trials" in captured.err
    assert "enqueued" not in captured.out
    trials = load(src.parent / "new.db", "new").trials
    assert not any(WARM_START_ATTR in t.user_attrs for t in trials)


def _empty_study(workdir: Path) -> None:
    storage = open_user_storage("sqlite:///studies/empty.db", must_exist=False, new_file=True)
    load_or_create("empty", storage, StudySpec())


@pytest.mark.parametrize(("args", "named"), [
    (["--warm-start", "nosuch@sqlite:///studies/src.db"], "no study 'nosuch'"),
    (["--warm-start", "ghost"], "ghost.db"),
    (["--warm-start", "empty"], "study 'empty' in sqlite:///studies/empty.db has no complete trial"),
    (["--warm-start", "src", "--config", "constant.toml"], "nothing in common"),
    (["--warm-start", "src", "--warm-start-top", "0"], "'0'"),
    (["--config", "zero.toml"], "warm_start_top must be an integer >= 1 but got 0"),
    (["--warm-start", "src@studies/src.db"], "studies/src.db"),
])
def test_warm_start_bad_input_is_one_line_exit_2_and_writes_nothing(
        src: Path, capsys, args: list[str], named: str) -> None:
    # Rule: an unknown study or storage, a study with no complete trial, a space with nothing
    # in common, a count below 1: one line naming it, exit 2, no new study, the source intact.
    workdir = src.parent.parent
    _empty_study(workdir)
    (workdir / "constant.toml").write_text(TINY_SPACE_TOML + 'schedules = ["constant"]\n')
    (workdir / "zero.toml").write_text('warm_start = "src"\nwarm_start_top = 0\n')
    before = {p.name: _digest(p) for p in src.parent.glob("*.db")}
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(run.main(["--trials", "1", "--study", "new", "--quiet", *args]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert named in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert {p.name: _digest(p) for p in src.parent.glob("*.db")} == before


def test_report_says_which_trials_came_from_the_warm_start(src: Path) -> None:
    # Rule: the report's summary names the warm-started trials and whether the exported one is
    # among them.
    assert run.main(["--trials", "3", "--study", "new", "--warm-start", "src",
                     "--warm-start-top", "2", *TINY]) == 0
    assert report.main(["--study", "new", "--seeds", "1"]) == 0
    study = load(src.parent / "new.db", "new")
    best = max(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
               key=lambda t: t.values[0])
    text = (src.parent.parent / "reports" / "new" / "report.md").read_text()
    row = next(line for line in text.splitlines() if "warm start" in line)
    assert "trials #0, #1 from study 'src' (its #" in row
    assert ("the exported trial is one of them" in row) == (best.number < 2)


def test_warm_start_key_in_a_spec_file(src: Path, capsys) -> None:
    # Rule: warm_start and warm_start_top are run keys a spec file may set.
    (src.parent.parent / "warm.toml").write_text(
        TINY_SPACE_TOML.replace("[space]", 'warm_start = "src"\nwarm_start_top = 1\n[space]'))
    assert run.main(["--trials", "1", "--study", "new", "--epochs", "1", "--quiet",
                     "--config", "warm.toml"]) == 0
    assert "1 configuration enqueued" in capsys.readouterr().out
    assert optuna.load_study(study_name="new", storage="sqlite:///studies/new.db").trials[
        0].user_attrs[WARM_START_ATTR] == f"src#{ranked(src)[0].number}"
