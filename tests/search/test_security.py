"""Security: nothing we load can run code, the dashboard stays on this machine, passwords are
never shown or stored, and study names cannot write outside studies/ and reports/."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch

from search.data.imagefolder import cache_key, cache_path, load_tree, scan_tree
from search.errors import UsageError
from search.study.spec import StudySpec
from search.study.storage import check_study_name, mask_url, open_storage
from search.study.studies import load_or_create
from tests.helpers.badinput import MARKER, Crafted
from tests.helpers.clirunner import run_forked
from tests.helpers.dataset_files import write_tree
from tests.helpers.ports import free_port
from tests.helpers.servers import SERVERS, reachable

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [p for folder in ("search", "model_space", "benchmarks", "docs")
           for p in sorted((ROOT / folder).rglob("*.py"))]
# The one unpickling allowed: CIFAR's metadata file, in the dataset's own pickle format (its
# batch files are unpickled by torchvision itself). Only files from the official source belong
# there; models, caches and configs never go through pickle.
PICKLE_ALLOWED = {"search/data/torchvision_sets.py"}


def _calls(path: Path, owner: str, names: tuple[str, ...]) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr in names
            and isinstance(node.func.value, ast.Name) and node.func.value.id == owner]


def _weights_only(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
               and k.value.value is True for k in call.keywords)


def test_every_torch_load_is_weights_only_and_nothing_else_unpickles() -> None:
    loads = [(p, c) for p in PRODUCT for c in _calls(p, "torch", ("load",))]
    unpickles = {str(p.relative_to(ROOT)) for p in PRODUCT
                 if _calls(p, "pickle", ("load", "loads", "Unpickler"))}
    # Rule: every torch.load in the product passes weights_only=True (there is at least one:
    # the scan sees them), and plain pickle reads only CIFAR's own metadata file.
    assert loads
    assert [f"{p.name}:{c.lineno}" for p, c in loads if not _weights_only(c)] == []
    assert unpickles <= PICKLE_ALLOWED


def test_spec_that_is_a_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    # A file named like a spec, holding a pickle that would create MARKER when unpickled.
    torch.save({"epochs": Crafted(tmp_path / MARKER)}, tmp_path / "spec.toml")
    outcome = run_forked("search.run", ["--config", "spec.toml"], tmp_path, tmp_path / "logs")
    # Rule: study specs are read as TOML only: the pickle is refused in one line, never run.
    assert outcome.code == 2 and "'spec.toml' is not valid TOML" in outcome.err
    assert not (tmp_path / MARKER).exists()
    assert not (tmp_path / "studies").exists()


def test_crafted_decode_cache_is_refused_and_rebuilt(tmp_path: Path) -> None:
    root, cache = tmp_path / "tree", tmp_path / "cache"
    write_tree(root, per_class=4)
    first = load_tree(root, cache)
    _, train, _ = scan_tree(root)
    path = cache_path(cache, root, None, cache_key([train], None))
    assert path.is_file()
    # Someone replaces the cache with a pickle that would create MARKER when unpickled.
    torch.save({"x": Crafted(tmp_path / MARKER)}, path)
    again = load_tree(root, cache)
    # Rule: the cache loads with weights_only, so the planted file is refused, never run; the
    # tree is decoded again (same images) and the cache replaced.
    assert not (tmp_path / MARKER).exists()
    assert again.decoded > 0 and torch.equal(again.x, first.x)
    assert torch.load(path, weights_only=True)["x"].shape == first.x.shape


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) with a socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_dashboard_listens_on_localhost_only_by_default(workdir: Path) -> None:
    (workdir / "studies").mkdir()
    load_or_create("digits", open_storage("sqlite:///studies/digits.db"), StudySpec())  # ours
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "search.dashboard", "--port", str(port)],
                            cwd=workdir, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()  # printed once the study is read, just before listening
        deadline = time.monotonic() + 30
        while not _listening_addresses(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        addresses = _listening_addresses(port)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    # Rule: with no --host the dashboard listens on 127.0.0.1 alone (0100007F in /proc), so no
    # other machine can reach a dashboard that has no login.
    assert f"http://127.0.0.1:{port}/" in line
    assert addresses == {"0100007F"}


@pytest.mark.parametrize("url", [
    "postgresql://postgres:s3cret@127.0.0.1:5432/test",
    "postgresql+psycopg://u:s3cret@db.example/optuna?sslmode=require",
    "mysql+pymysql://root:s3cret@db:notaport/x",  # too malformed for SQLAlchemy to parse
    "postgresql://u:p@s3cret@db/x",  # an '@' left unescaped in the password
    "postgresql://db/x?user=u&password=s3cret",
])
def test_mask_url_hides_every_password(url: str) -> None:
    # Rule: a printable URL never holds the password, wherever the URL puts it.
    assert "s3cret" not in mask_url(url) and "***" in mask_url(url)


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/etc", "a\\b", ".hidden", "", "x" * 129])
def test_study_names_that_could_leave_their_folder_are_refused(name: str) -> None:
    # Rule: a study name is one plain file name, so studies/<name>.db and reports/<name>/ stay put.
    with pytest.raises(UsageError):
        check_study_name(name)


def _study_text(url: str, name: str) -> str:
    study = optuna.load_study(study_name=name, storage=url)
    # The dashboard's note lives in the study's system attrs.
    parts = [study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
    parts += [[t.user_attrs, t.system_attrs] for t in study.trials]
    return json.dumps(parts, default=str)


def test_password_in_storage_url_is_never_printed_written_or_stored(workdir: Path) -> None:
    why = reachable(SERVERS["postgresql"])
    if why is not None:
        pytest.skip(f"postgresql is unreachable: {why}")
    # The server trusts local connections, so it accepts any password: a real run with one.
    url, name = "postgresql://postgres:s3cret@127.0.0.1:5432/test", f"mask-{uuid.uuid4().hex[:10]}"
    where = ["--study", name, "--storage", url]
    try:
        searched = run_forked("search.run", [*where, "--trials", "2", "--epochs", "1", "--config",
                                             "tiny.toml", "--quiet"], workdir, workdir.parent / "a")
        reported = run_forked("search.report", [*where, "--seeds", "1", "--device", "cpu"],
                              workdir, workdir.parent / "b")
        printed = searched.out + searched.err + reported.out + reported.err
        written = [p for p in workdir.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
        stored = _study_text(url, name)
    finally:
        optuna.delete_study(study_name=name, storage=url)
    # Rule: the search and the report succeed and show the URL only masked: in every printed
    # line, every file they write (reports, artifacts) and the study's attrs and note.
    assert searched.code == 0 and reported.code == 0, printed
    assert "postgres:***@127.0.0.1" in searched.out and "postgres:***@" in stored
    assert "s3cret" not in printed
    assert written == []
    assert "s3cret" not in stored
