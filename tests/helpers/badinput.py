"""The corpus of bad inputs: one row per mistake a user can make, with the text its error names.

Each row runs in a fresh folder set up by its ``setup``; ``finished`` is a folder holding a real
finished study (``studies/digits.db``) and its report (``reports/digits/``) to copy from.
``{silent}`` and ``{busy}`` in argv stand for ports the test holds open: a server that accepts
connections and never answers, and a port already taken.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch

MARKER = "UNPICKLED"  # the file a crafted pickle creates if it is ever unpickled
Setup = Callable[[Path, Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    module: str  # the CLI: search.<module>
    argv: tuple[str, ...]
    named: str  # the one line must contain this (the bad value, or what to do)
    setup: Setup = lambda case, finished: None
    hidden: str | None = None  # must appear nowhere in the output (a password)
    code: int = 2


class Crafted:
    """Unpickling it calls open(path, "w"): code run by merely loading the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def files(**contents: str) -> Setup:
    def setup(case: Path, finished: Path) -> None:
        for name, text in contents.items():
            (case / name.replace("__", ".")).write_text(text)
    return setup


def spec(text: str) -> Setup:
    return files(spec__toml=text)


def study(case: Path, finished: Path) -> None:
    shutil.copytree(finished / "studies", case / "studies")


def report(case: Path, finished: Path) -> None:
    shutil.copytree(finished / "reports", case / "reports")


def corrupt_db(case: Path, finished: Path) -> None:
    (case / "studies").mkdir()
    (case / "studies" / "digits.db").write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 8)


def old_schema(case: Path, finished: Path) -> None:
    """The finished study as Optuna 3.1 left it: schema v3.0.0.d, before v3.2.0.a's index.

    Optuna's own downgrade of v3.2.0.a cannot run here (it drops an index under a name the
    models never create), so the one change it undoes is undone by hand.
    """
    study(case, finished)
    with closing(sqlite3.connect(case / "studies" / "digits.db")) as db:
        db.execute("DROP INDEX ix_trials_study_id")
        db.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
        db.execute("UPDATE version_info SET library_version = '3.1.1'")
        db.commit()


def studies_is_a_file(case: Path, finished: Path) -> None:
    (case / "studies").write_text("not a folder\n")


def torch_pickle(name: str) -> Setup:
    """A model.pt saved by torch.save whose unpickling would run code (it has our marker too)."""
    def setup(case: Path, finished: Path) -> None:
        torch.save({"format": "cnn-search-checkpoint/1", "state_dict": Crafted(case / MARKER)},
                   case / name)
    return setup


def plain_pickle(case: Path, finished: Path) -> None:
    with (case / "model.pt").open("wb") as out:
        pickle.dump(Crafted(case / MARKER), out, protocol=4)


def foreign_model(case: Path, finished: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, case / "model.pt")


def images(case: Path, finished: Path) -> None:
    (case / "empty").mkdir()


def configs(case: Path, finished: Path) -> None:
    report(case, finished)
    full = json.loads((case / "reports" / "digits" / "best_config.json").read_text())
    (case / "incomplete.json").write_text(json.dumps({**full, "model": {"depth": 2}}))


TINY = ("--epochs", "1", "--config", "tiny.toml", "--trials", "1")
PG_CLOSED = "postgresql://postgres:s3cret@127.0.0.1:1/test"

CASES = [
    # search.run: flags
    Case("run-trials-not-a-number", "run", ("--trials", "many"), "'many'"),
    Case("run-trials-negative", "run", ("--trials", "-3"), "'-3'"),
    Case("run-epochs-not-a-number", "run", ("--epochs", "ten"), "'ten'"),
    Case("run-epochs-negative", "run", ("--epochs", "-1"), "'-1'"),
    Case("run-jobs-not-a-number", "run", ("--jobs", "two"), "'two'"),
    Case("run-jobs-negative", "run", ("--jobs", "-2"), "'-2'"),
    Case("run-patience-negative", "run", ("--patience", "-1"), "--patience: expected a number >= 0 "
         "but got '-1'"),
    Case("run-unknown-sampler", "run", ("--sampler", "anneal"), "'anneal'"),
    Case("run-unknown-pruner", "run", ("--pruner", "asha"), "'asha'"),
    Case("run-unknown-device", "run", ("--device", "tpu"), "'tpu'"),
    Case("run-mistyped-flag", "run", ("--trails", "50"), "--trails 50 (did you mean --trials?)"),
    Case("run-study-name-climbs", "run", ("--study", "../escape"), "'../escape'"),
    Case("run-study-name-has-slash", "run", ("--study", "a/b"), "'a/b'"),
    # search.run: data
    Case("run-unknown-dataset", "run", ("--dataset", "imagenet"), "'imagenet'"),
    Case("run-mistyped-dataset", "run", ("--dataset", "mnits"), "'mnits' (did you mean mnist?)"),
    Case("run-dataset-path-missing", "run", ("--dataset", "photos/missing"), "photos/missing"),
    Case("run-dataset-path-is-a-file", "run", ("--dataset", "notes.txt"), "notes.txt' is a file",
         files(notes__txt="cats and dogs\n")),
    # search.run: study specs
    Case("run-malformed-toml", "run", ("--config", "spec.toml"), "'spec.toml' is not valid TOML",
         spec("epochs = 2\n[space\n")),
    Case("run-unknown-spec-key", "run", ("--config", "spec.toml"), "'learning_rate'",
         spec("learning_rate = 0.1\n")),
    Case("run-unknown-space-key", "run", ("--config", "spec.toml"), "space.width;",
         spec("[space]\nwidth = [8]\n")),
    Case("run-inverted-range", "run", ("--config", "spec.toml"), "space.depth",
         spec("[space]\ndepth = [3, 1]\n")),
    Case("run-empty-choice-list", "run", ("--config", "spec.toml"), "space.widths",
         spec("[space]\nwidths = []\n")),
    Case("run-dropout-one", "run", ("--config", "spec.toml"), "space.dropout",
         spec("[space]\ndropout = [0.2, 1.0]\n")),
    Case("run-negative-trials-in-spec", "run", ("--config", "spec.toml"), "trials must be an "
         "integer >= 1 but got -5", spec("trials = -5\n")),
    Case("run-negative-patience-in-spec", "run", ("--config", "spec.toml"), "patience must be an "
         "integer >= 0 but got -2", spec("patience = -2\n")),
    Case("run-baseline-not-a-bool-in-spec", "run", ("--config", "spec.toml"), "baseline must be "
         "true or false but got 'yes'", spec('baseline = "yes"\n')),
    Case("run-contradicts-stored-spec", "run", ("--epochs", "3"), "epochs=1, not 3", study),
    # search.run: storage
    Case("run-postgres-closed-port", "run", ("--storage", PG_CLOSED, *TINY), "127.0.0.1:1",
         hidden="s3cret"),
    Case("run-postgres-silent-server", "run",
         ("--storage", "postgresql://postgres@127.0.0.1:{silent}/test", *TINY), "timeout"),
    Case("run-mysql-closed-port", "run",
         ("--storage", "mysql+pymysql://root@127.0.0.1:1/test", *TINY), "127.0.0.1:1"),
    Case("run-mysql-silent-server", "run",
         ("--storage", "mysql+pymysql://root@127.0.0.1:{silent}/test", *TINY), "timed out"),
    Case("run-malformed-storage-url", "run", ("--storage", "studies.db", *TINY),
         "'studies.db' is not a database URL"),
    Case("run-unparsable-url-with-password", "run",
         ("--storage", "postgresql://u:s3cret@db:port/x", *TINY), "'port'", hidden="s3cret"),
    Case("run-postgres-misspelt-scheme", "run", ("--storage", "postgres://u@db/x", *TINY),
         "SQLAlchemy spells it postgresql://"),
    Case("run-missing-database-driver", "run", ("--storage", "mssql+pyodbc://u@db/x", *TINY),
         "driver"),
    Case("run-corrupt-sqlite", "run", TINY, "'sqlite:///studies/digits.db' is not a readable",
         corrupt_db),
    Case("run-old-schema", "run", TINY,
         "optuna storage upgrade --storage sqlite:///studies/digits.db", old_schema),
    Case("run-studies-is-a-file", "run", TINY, "'studies': it is a file", studies_is_a_file),
    # search.report
    Case("report-unknown-study", "report",
         ("--study", "nope", "--storage", "sqlite:///studies/digits.db"), "'nope'", study),
    Case("report-missing-storage", "report", ("--study", "ghost",), "studies/ghost.db"),
    Case("report-mistyped-study", "report", ("--study", "digit",),
         "'sqlite:///studies/digit.db' (the file does not exist); did you mean --study digits?",
         study),
    Case("report-study-name-climbs", "report", ("--study", "../etc",), "'../etc'"),
    Case("report-seeds-zero", "report", ("--seeds", "0",), "'0'"),
    Case("report-postgres-closed-port", "report", ("--storage", PG_CLOSED), "127.0.0.1:1",
         hidden="s3cret"),
    Case("report-corrupt-sqlite", "report", (), "studies/digits.db", corrupt_db),
    Case("report-old-schema", "report", (), "optuna storage upgrade", old_schema),
    # search.retrain
    Case("retrain-missing-config", "retrain", ("gone.json",), "'gone.json' does not exist"),
    Case("retrain-corrupt-config", "retrain", ("bad.json",), "'bad.json' is not a JSON file",
         files(bad__json="{not json")),
    Case("retrain-foreign-config", "retrain", ("list.json",), "'list.json' is not a best_config",
         files(list__json="[1, 2]")),
    Case("retrain-incomplete-config", "retrain", ("incomplete.json",), "'depth'", configs),
    Case("retrain-crafted-pickle-as-config", "retrain", ("model.pt",), "'model.pt' is not a JSON",
         torch_pickle("model.pt")),
    Case("retrain-folder-for-config", "retrain", ("reports/digits",),
         "did you mean reports/digits/best_config.json?", report),
    Case("retrain-epochs-not-a-number", "retrain",
         ("reports/digits/best_config.json", "--epochs", "x"), "'x'", report),
    # search.predict
    Case("predict-missing-model", "predict", ("gone.pt", "empty"), "'gone.pt' does not exist",
         images),
    Case("predict-corrupt-model", "predict", ("model.pt", "empty"), "'model.pt'",
         lambda c, f: ((c / "model.pt").write_bytes(bytes(range(256)) * 4), images(c, f))),
    Case("predict-foreign-model", "predict", ("model.pt", "empty"), "'model.pt' is not a cnn-search",
         lambda c, f: (foreign_model(c, f), images(c, f))),
    Case("predict-crafted-torch-pickle", "predict", ("model.pt", "empty"), "weights_only",
         lambda c, f: (torch_pickle("model.pt")(c, f), images(c, f))),
    Case("predict-crafted-plain-pickle", "predict", ("model.pt", "empty"), "weights_only",
         lambda c, f: (plain_pickle(c, f), images(c, f))),
    Case("predict-config-as-model", "predict", ("reports/digits/best_config.json", "x.png"),
         "best_config.json' is not a cnn-search checkpoint", report),
    Case("predict-folder-for-model", "predict", ("reports/digits", "x.png"),
         "did you mean reports/digits/model.pt?", report),
    Case("predict-no-images", "predict", ("reports/digits/model.pt", "empty"), "empty",
         lambda c, f: (report(c, f), images(c, f))),
    # search.dashboard
    Case("dashboard-port-in-use", "dashboard", ("--port", "{busy}"), "port in use", study),
    Case("dashboard-port-out-of-range", "dashboard", ("--port", "99999"), "'99999'"),
    Case("dashboard-unknown-study", "dashboard", ("--study", "nope"), "nope"),
    Case("dashboard-corrupt-sqlite", "dashboard", (), "studies/digits.db", corrupt_db),
    Case("dashboard-unparsable-url-with-password", "dashboard",
         ("--storage", "postgresql://u:s3cret@db:port/x"), "'port'", hidden="s3cret"),
]
