"""``python -m search.dashboard``: browse studies, their trials and artifacts in optuna-dashboard."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound

from search import cli
from search.results.artifacts import ARTIFACT_ROOT
from search.study.storage import check_study_name, default_storage, mask_url, open_user_storage
from search.study.studies import check_ours

PROG = "python -m search.dashboard"
DEFAULT_STUDY = "digits"
# Where artifacts uploaded from the dashboard go when no single study was named.
UPLOADS = "dashboard-uploads"


class StudyArtifactStore:
    """Artifact store over ``studies/artifacts/<study>/``, one folder per study.

    A storage URL may hold many studies, and optuna-dashboard takes one store: this one reads an
    artifact id from whichever study folder has it. Ids are UUIDs, so they never clash.
    """

    def __init__(self, root: Path, write_dir: Path) -> None:
        self.root = root
        self.write_dir = write_dir

    def _find(self, artifact_id: str) -> Path:
        # Only a bare file name may pass: no separators, nothing that climbs out of root.
        if not artifact_id or Path(artifact_id).name != artifact_id or artifact_id.startswith("."):
            raise ArtifactNotFound(f"invalid artifact id {artifact_id!r}")
        for path in (self.write_dir / artifact_id, *self.root.glob(f"*/{artifact_id}")):
            if path.is_file():
                return path
        raise ArtifactNotFound(f"artifact {artifact_id!r} not found under {self.root}")

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._find(artifact_id).open("rb")

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.write_dir.mkdir(parents=True, exist_ok=True)
        with (self.write_dir / Path(artifact_id).name).open("wb") as out:
            while chunk := content_body.read(1 << 20):
                out.write(chunk)

    def remove(self, artifact_id: str) -> None:
        self._find(artifact_id).unlink()


def port_number(text: str) -> int:
    port = cli.positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535 but got {text!r}")
    return port


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = cli.Parser(prog=prog, description="Browse studies in optuna-dashboard.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--study", help=f"study name; storage sqlite:///studies/<study>.db "
                                       f"(default {DEFAULT_STUDY})")
    where.add_argument("--storage", help="SQLAlchemy URL; shows every study stored there")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8080, help="port (default 8080)")
    p.set_defaults(prog=prog)  # messages name the command as it was called
    return p


def shown_ids(storage: optuna.storages.BaseStorage, study: str | None) -> list[int]:
    """Ids of the studies to show: the named one (KeyError if absent), or all."""
    if study is not None:
        study_id = storage.get_study_id_from_name(study)
        check_ours(storage, study, study_id)  # --study names a cnn-search study
        return [study_id]
    return [storage.get_study_id_from_name(s.study_name) for s in storage.get_all_studies()]


def read_in(storage: optuna.storages.BaseStorage, ids: list[int]) -> None:
    # Reading every trial once before listening makes the first page as fast as the next ones.
    for study_id in ids:
        storage.get_all_trials(study_id, deepcopy=False)


def check_port(host: str, port: int) -> None:
    """Fail before starting the server (bottle would print a traceback), naming the real cause:
    a host that is no address of this machine is not a port problem."""
    # bottle serves IPv6 for a host with a colon; the check binds the same way.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise cli.UsageError(f"cannot listen on --host {host!r}: no such address "
                             f"({error.strerror}); use 127.0.0.1, ::1 or an address of this "
                             "machine") from None
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise cli.UsageError(f"cannot listen on {host}:{port}: port in use; is another "
                                 "dashboard running? Pick another --port") from None
        raise cli.UsageError(f"cannot listen on --host {host!r}: {error.strerror or error}; use "
                             "127.0.0.1, ::1 or an address of this machine") from None


def serve(args: argparse.Namespace) -> int:
    study = None if args.storage else check_study_name(args.study or DEFAULT_STUDY)
    url = args.storage or default_storage(study)
    # optuna-dashboard re-reads all of a study's trials every 10 s. Through Optuna's trial cache
    # (the one optuna.load_study uses) it reads only the trials that were unfinished or are new.
    storage = optuna.storages.get_storage(open_user_storage(url, must_exist=True))
    try:
        ids = shown_ids(storage, study)
    except KeyError:
        raise cli.UsageError(f"study {study!r} not found in {mask_url(url)!r}") from None
    check_port(args.host, args.port)
    read_in(storage, ids)
    path = f"/dashboard/studies/{ids[0]}" if study else "/dashboard"
    store = StudyArtifactStore(ARTIFACT_ROOT, ARTIFACT_ROOT / (study or UPLOADS))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard on {mask_url(url)}: http://{host}:{args.port}{path}  (Ctrl-C stops it)",
          flush=True)
    from optuna_dashboard import run_server  # here: --help answers without loading the server

    try:
        run_server(storage, host=args.host, port=args.port, artifact_store=store)
    except OSError as error:
        return cli.fail(args.prog, f"cannot listen on {args.host}:{args.port}: {error}", cli.EXIT_FAILURE)
    return cli.EXIT_OK


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.quiet_libraries()
    # SIGTERM keeps its default (exit at once): the server holds nothing to clean up, and as an
    # exception it could be swallowed by wsgiref's handler of a request in progress. Ctrl-C is
    # how a server is stopped, so it exits 0.
    return cli.run_cli(args.prog, lambda: serve(args), on_interrupt=cli.EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
