"""An ImageFolder study is pinned to its tree: the resolved path is stored, and a fingerprint of
the file list refuses, in one line, a tree that is not the one the study started with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna

from tests.helpers.clirunner import run_process, snapshot
from tests.helpers.configs import TINY_SPACE_TOML
from tests.helpers.dataset_files import write_tree

TINY = ["--epochs", "1", "--config", "tiny.toml", "--quiet", "--pruner", "none"]


def _search(cwd: Path, db: Path, *args: str):  # noqa: ANN202 - an Outcome
    (cwd / "tiny.toml").write_text(TINY_SPACE_TOML)
    return run_process("search.run", ["--study", "tree", "--storage", f"sqlite:///{db}",
                                      "--data-dir", str(db.parent / "data"), *args, *TINY], cwd)


def test_pinned_tree_resumes_from_another_folder_and_refuses_a_changed_tree(tmp_path: Path) -> None:
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    write_tree(first / "photos", per_class=4)
    write_tree(elsewhere / "photos", per_class=5)  # the same relative name, another tree
    elsewhere.mkdir(exist_ok=True)
    db = tmp_path / "tree.db"
    assert _search(first, db, "--dataset", "photos", "--trials", "1").code == 0
    study = optuna.load_study(study_name="tree", storage=f"sqlite:///{db}")
    stored = json.loads(study.user_attrs["spec"])["dataset"]
    # Rule: the study stores where its tree is, resolved, and a fingerprint of its files.
    assert stored == str((first / "photos").resolve())
    assert study.user_attrs["data_fingerprint"]["images"] == 12
    # Rule: resumed from another folder without --dataset, it trains on its own tree.
    resumed = _search(elsewhere, db, "--trials", "2")
    assert resumed.code == 0, resumed.err
    # Rule: the same relative name there is another tree: refused, one line, nothing written.
    before = snapshot(tmp_path)
    other = _search(elsewhere, db, "--dataset", "photos", "--trials", "3")
    assert other.code == 2 and other.err.count("\n") == 1 and "was created with dataset=" in other.err
    # Rule: an image added to the tree would re-split train and val: refused in one line.
    shutil.copy(next((first / "photos" / "train" / "cat").iterdir()),
                first / "photos" / "train" / "cat" / "added.png")
    changed = _search(first, db, "--trials", "3")
    assert changed.code == 2 and changed.err.count("\n") == 1, changed.err
    assert "is not the one study 'tree' started with (12 images then, 13 now" in changed.err
    assert "Traceback" not in other.err + changed.err
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if "added.png" not in k} == before
    assert len(optuna.load_study(study_name="tree", storage=f"sqlite:///{db}").trials) == 2
