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


def both(*setups: Setup) -> Setup:
    def setup(case: Path, finished: Path) -> None:
        for one in setups:
            one(case, finished)
    return setup


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
    Case("run-negative-checkpoint-every", "run", ("--checkpoint-every", "-1"), "'-1'"),
    Case("run-checkpoint-every-nan", "run", ("--checkpoint-every", "nan"), "'nan'"),
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
    Case("run-convs-above-four", "run", ("--config", "spec.toml"), "space.convs must lie in "
         "[1, 4] but got [2, 5]", spec("[space]\nconvs = [2, 5]\n")),
    Case("run-cutout-whole-image", "run", ("--config", "spec.toml"), "space.cutout",
         spec("[space]\ncutout = [0.0, 1.0]\n")),
    Case("run-negative-trials-in-spec", "run", ("--config", "spec.toml"), "trials must be an "
         "integer >= 1 but got -5", spec("trials = -5\n")),
    Case("run-negative-patience-in-spec", "run", ("--config", "spec.toml"), "patience must be an "
         "integer >= 0 but got -2", spec("patience = -2\n")),
    Case("run-checkpoint-every-text-in-spec", "run", ("--config", "spec.toml"), "checkpoint_every "
         "must be a number of seconds >= 0 but got 'often'", spec('checkpoint_every = "often"\n')),
    Case("run-baseline-not-a-bool-in-spec", "run", ("--config", "spec.toml"), "baseline must be "
         "true or false but got 'yes'", spec('baseline = "yes"\n')),
    Case("run-contradicts-stored-spec", "run", ("--epochs", "3"), "epochs=1, not 3", study),
    # search.run: experiment trackers
    Case("run-unknown-tracker", "run", ("--track", "wandb"), "'wandb'"),
    Case("run-track-not-a-list-in-spec", "run", ("--config", "spec.toml"), "track must be a list "
         "of tracker names (mlflow, tensorboard) but got 'mlflow'", spec('track = "mlflow"\n')),
    Case("run-tracked-unknown-dataset", "run", ("--track", "mlflow", "--track", "tensorboard",
                                                "--dataset", "imagenet"), "'imagenet'"),
    Case("run-unknown-tracker-in-spec", "run", ("--config", "spec.toml"), "unknown tracker "
         "'wandb'; known: mlflow, tensorboard", spec('track = ["mlflow", "wandb"]\n')),
    # search.run: warm starts (the finished study is the source; it must stay as it was)
    Case("run-warm-start-no-storage", "run", ("--study", "new", "--warm-start", "ghost"),
         "'sqlite:///studies/ghost.db' (the file does not exist)"),
    Case("run-warm-start-unknown-study", "run",
         ("--study", "new", "--warm-start", "nosuch@sqlite:///studies/digits.db"),
         "no study 'nosuch' in sqlite:///studies/digits.db; studies there: digits", study),
    Case("run-warm-start-nothing-in-common", "run",
         ("--study", "new", "--warm-start", "digits", "--config", "spec.toml"),
         "has nothing in common with this study's space", both(study, spec(
             '[space]\nschedules = ["constant"]\n'))),
    Case("run-warm-start-top-zero", "run", ("--warm-start", "digits", "--warm-start-top", "0"),
         "'0'", study),
    # Refused even by a study with trials, which ignores a well-formed warm start.
    Case("run-warm-start-path-not-url", "run", ("--warm-start", "digits@studies/digits.db"),
         "but got 'studies/digits.db'", study),
    Case("run-warm-start-top-zero-in-spec", "run", ("--config", "spec.toml"),
         "warm_start_top must be an integer >= 1 but got 0", spec("warm_start_top = 0\n")),
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
    Case("report-tracker-without-files", "report", ("--track", "tensorboard"), "'tensorboard'",
         study),
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


# Issue "robustness, second round": foreign studies and databases, storages in memory or on
# kernel file systems, devices, and every value read from a file a user can edit.

def plain_optuna_study(db: str, direction: str = "minimize", spec: bool = False) -> Setup:
    """A study someone made with Optuna alone (5 trials), named digits, in ``db``."""
    def setup(case: Path, finished: Path) -> None:
        import optuna

        (case / db).parent.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(study_name="digits", storage=f"sqlite:///{case / db}",
                                    direction=direction)
        if spec:  # our spec, copied in, on a study of another direction
            study.set_user_attr("spec", json.dumps({"dataset": "digits"}))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    return setup


def app_db(case: Path, finished: Path) -> None:
    """Some application's SQLite database: tables of its own, no Optuna."""
    with closing(sqlite3.connect(case / "app.db")) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
        db.commit()


def edited_config(section: str | None, **values: object) -> Setup:
    """The finished report, with best_config.json edited by hand (a key of a section)."""
    def setup(case: Path, finished: Path) -> None:
        report(case, finished)
        path = case / "reports" / "digits" / "best_config.json"
        config = json.loads(path.read_text())
        (config[section] if section else config).update(values)
        path.write_text(json.dumps(config))
    return setup


def edited_checkpoint(**values: object) -> Setup:
    """The finished report's model.pt, with top-level or config values changed."""
    def setup(case: Path, finished: Path) -> None:
        report(case, finished)
        path = case / "reports" / "digits" / "model.pt"
        raw = torch.load(path, weights_only=True)
        for key, value in values.items():
            if key.startswith("config."):
                raw["config"][key.removeprefix("config.")] = value
            else:
                raw[key] = value
        torch.save(raw, path)
        (case / "x.png").write_bytes((finished / "reports" / "digits" / "plots" /
                                      "confusion_matrix.png").read_bytes())
    return setup


def edited_stored_spec(text: str | None = None, **values: object) -> Setup:
    """The finished study, its stored spec edited in the database (or replaced by ``text``)."""
    def setup(case: Path, finished: Path) -> None:
        study(case, finished)
        with closing(sqlite3.connect(case / "studies" / "digits.db")) as db:
            (raw,) = db.execute("SELECT value_json FROM study_user_attributes "
                                "WHERE key = 'spec'").fetchone()
            spec_json = text if text is not None else json.dumps(
                {**json.loads(json.loads(raw)), **values})
            db.execute("UPDATE study_user_attributes SET value_json = ? WHERE key = 'spec'",
                       (json.dumps(spec_json),))
            db.commit()
    return setup


LONG = "x" * 300
BEST = "reports/digits/best_config.json"
MODEL = "reports/digits/model.pt"

CASES += [
    # Foreign studies: never taken over, never reported, never shown as ours.
    Case("run-foreign-study", "run", ("--storage", "sqlite:///mine.db", "--trials", "8",
                                      "--epochs", "1", "--config", "tiny.toml"),
         "was not made by cnn-search", plain_optuna_study("mine.db")),
    Case("run-foreign-study-default-storage", "run", TINY, "was not made by cnn-search",
         plain_optuna_study("studies/digits.db", "maximize")),
    Case("run-study-of-another-direction", "run", ("--storage", "sqlite:///mine.db", *TINY),
         "direction(s) minimize", plain_optuna_study("mine.db", spec=True)),
    Case("report-foreign-study", "report", ("--storage", "sqlite:///mine.db"),
         "was not made by cnn-search", plain_optuna_study("mine.db")),
    Case("report-study-of-another-direction", "report", ("--storage", "sqlite:///mine.db"),
         "direction(s) minimize", plain_optuna_study("mine.db", spec=True)),
    Case("dashboard-foreign-study", "dashboard", ("--study", "digits"),
         "was not made by cnn-search", plain_optuna_study("studies/digits.db")),
    # A database that is not Optuna's: no tables added, no journal mode switched.
    Case("run-app-database", "run", ("--storage", "sqlite:///app.db", *TINY),
         "is not an Optuna storage: it holds other tables (users)", app_db),
    Case("run-app-database-bad-dataset", "run", ("--storage", "sqlite:///app.db", "--dataset",
                                                 "/nonexistent", *TINY), "app.db", app_db),
    Case("report-app-database", "report", ("--storage", "sqlite:///app.db"),
         "is not an Optuna storage", app_db),
    Case("dashboard-app-database", "dashboard", ("--storage", "sqlite:///app.db"),
         "is not an Optuna storage", app_db),
    # Storage that cannot keep a study.
    Case("run-storage-in-memory", "run", ("--storage", "sqlite:///:memory:", *TINY), "in memory"),
    Case("run-storage-in-memory-jobs", "run", ("--storage", "sqlite://", "--jobs", "2", *TINY),
         "in memory"),
    Case("report-storage-in-memory", "report", ("--storage", "sqlite:///:memory:"), "in memory"),
    Case("dashboard-storage-in-memory", "dashboard", ("--storage", "sqlite://"), "in memory"),
    Case("run-storage-under-proc", "run", ("--storage", "sqlite:////proc/cnn.db", *TINY),
         "kernel file system"),
    Case("run-storage-name-too-long", "run", ("--storage", f"sqlite:///{LONG}.db", *TINY),
         "too long"),
    Case("report-storage-name-too-long", "report", ("--storage", f"sqlite:///{LONG}.db"),
         "too long"),
    # Devices: auto, cpu, cuda, cuda:N and nothing else; CUDA only where there is one.
    Case("run-device-meta", "run", ("--device", "meta", *TINY), "unknown device 'meta'"),
    Case("run-device-upper-case", "run", ("--device", "CPU", *TINY), "unknown device 'CPU'"),
    Case("run-device-negative-index", "run", ("--device", "cuda:-1", *TINY),
         "unknown device 'cuda:-1'"),
    Case("run-device-cuda-absent", "run", ("--device", "cuda", *TINY), "CUDA is not available"),
    Case("run-device-cuda-index-absent", "run", ("--device", "cuda:3", *TINY),
         "CUDA is not available"),
    Case("report-device-mps", "report", ("--device", "mps"), "unknown device 'mps'", study),
    Case("retrain-device-meta", "retrain", (BEST, "--device", "meta"), "unknown device 'meta'",
         report),
    # best_config.json edited by hand: the same rules as the flags, naming the key.
    Case("retrain-config-lr-negative", "retrain", (BEST,), "lr must be a finite number > 0",
         edited_config("model", lr=-1)),
    Case("retrain-config-no-widths", "retrain", (BEST,), "widths must be one or more whole numbers",
         edited_config("model", widths=[])),
    Case("retrain-config-unknown-optimizer", "retrain", (BEST,), "unknown optimizer 'sgdd'",
         edited_config("model", optimizer="sgdd")),
    Case("retrain-config-dropout-above-one", "retrain", (BEST,), "dropout must be",
         edited_config("model", dropout=1.5)),
    Case("retrain-config-batch-size-zero", "retrain", (BEST,), "batch_size must be",
         edited_config("model", batch_size=0)),
    Case("retrain-config-unknown-schedule", "retrain", (BEST,), "unknown schedule 'cyclic'",
         edited_config("model", schedule="cyclic")),
    Case("retrain-config-convs-zero", "retrain", (BEST,), "convs must be a whole number in [1, 4]"
         " but got 0", edited_config("model", convs=0)),
    Case("retrain-config-label-smoothing-above-one", "retrain", (BEST,), "label_smoothing must "
         "be a finite number >= 0 and < 1 but got 1.5", edited_config("model", label_smoothing=1.5)),
    Case("retrain-config-cutout-negative", "retrain", (BEST,), "cutout must be a finite number",
         edited_config("model", cutout=-0.1)),
    Case("retrain-config-residual-text", "retrain", (BEST,), "residual must be true or false but "
         "got 'yes'", edited_config("model", residual="yes")),
    Case("retrain-config-tta-flip-number", "retrain", (BEST,), "tta_flip must be true or false "
         "but got 1", edited_config("model", tta_flip=1)),
    Case("retrain-config-unknown-model-key", "retrain", (BEST,), "'activation'",
         edited_config("model", activation="gelu")),
    Case("retrain-config-epochs-zero", "retrain", (BEST,), "epochs must be an integer >= 1 but got 0",
         edited_config(None, epochs=0)),
    Case("retrain-config-epochs-text", "retrain", (BEST,), "epochs must be an integer",
         edited_config(None, epochs="8")),
    Case("retrain-config-seed-negative", "retrain", (BEST,), "seed must be an integer",
         edited_config(None, seed=-1)),
    Case("retrain-config-split-seed-huge", "retrain", (BEST,), "split_seed must be an integer "
         "from 0 to 4294967295", edited_config("data", split_seed=2**40)),
    Case("retrain-config-test-fraction-one", "retrain", (BEST,), "test_fraction",
         edited_config("data", test_fraction=1.0)),
    Case("retrain-config-unknown-data-key", "retrain", (BEST,), "unknown data key 'datset'",
         edited_config("data", datset="digits")),
    Case("retrain-config-future-version", "retrain", (BEST,), "version '7'",
         edited_config(None, format="cnn-search-best-config/7")),
    Case("retrain-config-data-not-object", "retrain", (BEST,), "'data' must be an object",
         edited_config(None, data="digits")),
    # Checkpoints edited by hand: shapes, finite statistics, known names.
    Case("predict-checkpoint-mean-nan", "predict", (MODEL, "x.png"), "mean must be 1 finite",
         edited_checkpoint(mean=[float("nan")])),
    Case("predict-checkpoint-std-zero", "predict", (MODEL, "x.png"), "std must be positive",
         edited_checkpoint(std=[0.0])),
    Case("predict-checkpoint-shape-short", "predict", (MODEL, "x.png"), "input_shape must be "
         "three whole numbers", edited_checkpoint(input_shape=[1, 8])),
    Case("predict-checkpoint-classes-text", "predict", (MODEL, "x.png"), "classes must be a list",
         edited_checkpoint(classes="0123456789")),
    Case("predict-checkpoint-unknown-optimizer", "predict", (MODEL, "x.png"),
         "unknown optimizer 'lion'", edited_checkpoint(**{"config.optimizer": "lion"})),
    Case("predict-checkpoint-widths-changed", "predict", (MODEL, "x.png"), "does not rebuild",
         edited_checkpoint(**{"config.widths": [64, 64]})),
    # The spec stored in a study, edited in the database.
    Case("run-stored-spec-not-json", "run", ("--trials", "3"), "not a JSON object",
         edited_stored_spec("{epochs: 2")),
    Case("run-stored-spec-epochs-zero", "run", ("--trials", "3"), "the spec stored in study "
         "'digits': epochs must be an integer >= 1 but got 0", edited_stored_spec(epochs=0)),
    Case("run-stored-spec-unknown-sampler", "run", ("--trials", "3"), "unknown sampler 'anneal'",
         edited_stored_spec(sampler="anneal")),
    Case("report-stored-spec-not-json", "report", (), "not a JSON object",
         edited_stored_spec("[1, 2]")),
    Case("report-stored-spec-unknown-key", "report", (), "unknown key",
         edited_stored_spec(learning_rate=0.1)),
    Case("report-stored-spec-fraction", "report", (), "val_fraction",
         edited_stored_spec(val_fraction=2)),
    # Study specs: types, ranges, nesting.
    Case("run-spec-seed-huge", "run", ("--config", "spec.toml"), "seed must be an integer from "
         "0 to 4294967295", spec(f"seed = {2**40}\n")),
    Case("run-flag-seed-huge", "run", ("--seed", str(2**40), *TINY), "seed must be an integer "
         "from 0 to 4294967295"),
    Case("run-spec-image-size-huge", "run", ("--config", "spec.toml"), "image_size must be an "
         "integer from 4 to 1024", spec("image_size = 5000\n")),
    Case("run-spec-epochs-text", "run", ("--config", "spec.toml"), "epochs must be an integer",
         spec('epochs = "8"\n')),
    Case("run-spec-space-not-a-table", "run", ("--config", "spec.toml"), "'space'",
         spec("space = 3\n")),
    Case("run-spec-space-value-not-a-list", "run", ("--config", "spec.toml"),
         "space.depth must be a list", spec('[space]\ndepth = "2"\n')),
    Case("run-spec-data-dir-empty", "run", ("--config", "spec.toml"), "data_dir",
         spec('data_dir = ""\n')),
    Case("run-spec-device-meta", "run", ("--config", "spec.toml", "--epochs", "1"),
         "unknown device 'meta'", spec('device = "meta"\n')),
    # The dashboard's host: not a port problem.
    Case("dashboard-host-unknown", "dashboard", ("--host", "nohost.invalid", "--port", "{busy}"),
         "no such address", study),
    Case("dashboard-host-not-here", "dashboard", ("--host", "192.0.2.7"), "address of this machine",
         study),
]

CASES += [
    # Output folders: refused before any work, naming the real cause (exit 2, not 1).
    Case("report-out-is-a-file", "report", ("--out", "notes.txt"), "'notes.txt' is a file",
         lambda c, f: (study(c, f), files(notes__txt="mine\n")(c, f))),
    Case("report-out-under-proc", "report", ("--out", "/proc/cnn-reports"), "kernel file system",
         study),
    Case("report-out-name-too-long", "report", ("--out", LONG), "too long", study),
    Case("retrain-out-under-sys", "retrain", (BEST, "--out", "/sys/cnn"), "kernel file system",
         report),
    Case("retrain-out-inside-a-file", "retrain", (BEST, "--out", "notes.txt/model"),
         "'notes.txt' is a file", lambda c, f: (report(c, f), files(notes__txt="mine\n")(c, f))),
    Case("run-storage-inside-a-file", "run", ("--storage", "sqlite:///notes.txt/x.db", *TINY),
         "'notes.txt': it is a file", files(notes__txt="mine\n")),
]
