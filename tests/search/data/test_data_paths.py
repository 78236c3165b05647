"""Data folders and dataset paths that cannot work are refused by their real cause, before
anything is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.data.options import DataError, DataOptions
from search.data.registry import check_data_paths, load_bundle
from tests.helpers.dataset_files import write_tree

LONG = "n" * 300


@pytest.mark.parametrize(("data_dir", "says"), [
    ("notes.txt", "'notes.txt' is a file, not a folder"),
    ("notes.txt/data", "'notes.txt/data' cannot be used: 'notes.txt' is a file, not a folder"),
    ("/proc/cnn-search", "'/proc/cnn-search' is under /proc, the system's own folder"),
    ("/proc", "'/proc' is under /proc"),
    ("/sys/kernel/cnn-search", "is under /sys"),
    (f"missing/{LONG}", "a name in it has 300 bytes; file names have at most 255"),
    ("/".join(["d" * 200] * 21), "paths have fewer than 4096"),
], ids=["file", "inside-a-file", "under-proc", "proc", "under-sys", "long-name", "long-path"])
def test_check_data_paths_refuses_data_dir_by_its_real_cause(workdir: Path, data_dir: str,
                                                             says: str) -> None:
    (workdir / "notes.txt").write_text("cats\n")
    # Rule: a --data-dir that can never hold data is one line naming it and why, for any
    # dataset (digits too), and nothing is created on the way.
    with pytest.raises(DataError, match="data folder \\(--data-dir\\)") as error:
        check_data_paths(DataOptions(data_dir=data_dir))
    assert says in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.txt", "tiny.toml"]


@pytest.mark.parametrize("data_dir", ["data", "new/data/folder", ".", "/dev/shm/cnn-search"])
def test_check_data_paths_accepts_folders_to_be_made(workdir: Path, data_dir: str) -> None:
    # Rule: a data folder that does not exist yet is fine: it is made when first needed (a RAM
    # disk under /dev/shm too).
    check_data_paths(DataOptions(dataset="mnist", data_dir=data_dir))


@pytest.mark.parametrize(("dataset", "says"), [
    (f"photos/{LONG}", "a name in it has 300 bytes"),
    ("notes.txt/tree", "'notes.txt' is a file, not a folder"),
], ids=["long-name", "inside-a-file"])
def test_check_data_paths_refuses_dataset_path_by_its_real_cause(workdir: Path, dataset: str,
                                                                 says: str) -> None:
    (workdir / "notes.txt").write_text("cats\n")
    # Rule: a tree path that cannot even be looked up says why, not "does not exist".
    with pytest.raises(DataError, match=f"dataset '{dataset}' cannot be used") as error:
        check_data_paths(DataOptions(dataset=dataset))
    assert says in str(error.value)


def test_load_bundle_split_refusal_leaves_no_cache(tmp_path: Path) -> None:
    write_tree(tmp_path / "t", per_class=1)
    options = DataOptions(dataset=str(tmp_path / "t"), data_dir=str(tmp_path / "data"))
    # Rule: a tree that decodes but cannot be split as asked is refused before its cache is
    # written: no data/ folder, no cache file, no lock file.
    with pytest.raises(DataError, match="every class needs 2 or more examples"):
        load_bundle(options)
    assert not (tmp_path / "data").exists()
