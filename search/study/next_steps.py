"""The commands a user is told to run next, formatted by one rule for every --study/--storage.

A command names the study, and names the storage whenever it is not the study's default
(``sqlite:///studies/<study>.db``), so the printed line reaches the same study from the same
folder. Arguments are shell-quoted. A password in the URL is printed as ``***``: the line is
then complete but for the secret, which is never printed.
"""

from __future__ import annotations

import shlex

from search.study.storage import default_storage, mask_url

COMMANDS = ("run", "report", "retrain", "predict", "dashboard")


def command(name: str, *args: str) -> str:
    """``python -m search.<name> ARGS``, quoted for a POSIX shell."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}")
    return shlex.join(["python", "-m", f"search.{name}", *args])


def study_args(study: str, url: str) -> list[str]:
    """``--study NAME``, and ``--storage URL`` where the URL is not the study's default."""
    if url == default_storage(study):
        return ["--study", study]
    return ["--study", study, "--storage", mask_url(url)]


def report_command(study: str, url: str) -> str:
    return command("report", *study_args(study, url))


def resume_command(study: str, url: str, trials: int, jobs: int = 1, *,
                   track: tuple[str, ...] = ()) -> str:
    extra = ["--jobs", str(jobs)] if jobs > 1 else []
    extra += [arg for name in track for arg in ("--track", name)]
    return command("run", *study_args(study, url), "--trials", str(trials), *extra)


def search_command(study: str, url: str) -> str:
    """The first run of a study; on a default storage the dataset names it, so say --study."""
    return command("run", *study_args(study, url))


def dashboard_command(study: str, url: str) -> str:
    # search.dashboard takes --study (its default storage) or --storage (every study there).
    if url == default_storage(study):
        return command("dashboard", "--study", study)
    return command("dashboard", "--storage", mask_url(url))
