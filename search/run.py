"""``python -m search.run``: run (or resume) a hyperparameter search study."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import cli, interrupts
from search.strategy.samplers import PRUNER_NAMES, SAMPLER_NAMES
from search.study.spec import (
    DEFAULT_WARM_START_TOP,
    SAVE_MODES,
    TRACKERS,
    RunOptions,
    read_toml,
)

if TYPE_CHECKING:
    import optuna

PROG = "python -m search.run"
# CLI flag -> spec or run key; flags left at None were not given and do not override.
SPEC_FLAGS = ("dataset", "epochs", "patience", "seed", "sampler", "pruner", "baseline", "data_dir",
              "image_size", "train_subset", "objectives", "max_params", "max_macs",
              "max_latency_ms", "latency_device", "latency_batch", "latency_threads")
RUN_FLAGS = ("trials", "timeout", "study", "storage", "device", "jobs", "checkpoint_dir",
             "checkpoint_every", "track", "warm_start", "warm_start_top")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = cli.Parser(prog=prog, description="Search CNN hyperparameters with Optuna.")
    p.add_argument("--trials", type=cli.positive_int,
                   help="study-wide target of finished (complete + pruned) trials (default 100)")
    p.add_argument("--epochs", type=cli.positive_int,
                   help="max epochs per trial (default 8; more on a small training set, up to 30)")
    p.add_argument("--patience", type=cli.non_negative_int,
                   help="end a trial once val accuracy has not improved for N epochs (0: never)")
    p.add_argument("--timeout", type=cli.positive_float, help="stop starting trials after S seconds")
    p.add_argument("--seed", type=cli.non_negative_int, help="search seed (default 0)")
    p.add_argument("--study", help="study name (default: the dataset name)")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--dataset", help="digits (default), mnist, fashion-mnist, cifar10, cifar100, "
                   "or the path of an ImageFolder tree (PATH/train/<class>/<image>)")
    p.add_argument("--data-dir", help="torchvision datasets and the decode cache (default data/)")
    p.add_argument("--download", action="store_true", help="fetch a missing torchvision dataset")
    p.add_argument("--image-size", type=cli.positive_int,
                   help="resize images to this square side (default: a tree's typical size, <= 64)")
    p.add_argument("--train-subset", type=cli.positive_int,
                   help="search on a stratified subset of N training images")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="default tpe")
    p.add_argument("--pruner", choices=PRUNER_NAMES,
                   help="default: sha (successive halving) on digits, hyperband on other data")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                   help="try the textbook recipe (SGD, Nesterov, cosine) as a new study's first "
                        "trial (default: on, except on digits)")
    p.add_argument("--objectives", type=cli.name_list, metavar="NAMES",
                   help="val_accuracy, then costs to minimise as well (n_params, macs, "
                        "latency_ms), comma-separated: a multi-objective (Pareto) search")
    p.add_argument("--max-params", type=cli.positive_int, metavar="N",
                   help="never train a model with more parameters")
    p.add_argument("--max-macs", type=cli.positive_int, metavar="N",
                   help="never train a model with more multiply-accumulates per image")
    p.add_argument("--max-latency-ms", type=cli.positive_float, metavar="MS",
                   help="never train a model slower than this (median forward pass, measured "
                        "on --latency-device before training)")
    p.add_argument("--latency-device", help="where latency is measured: cpu (default), cuda "
                   "or cuda:N")
    p.add_argument("--latency-batch", type=cli.positive_int,
                   help="images per forward pass when measuring latency (default 1)")
    p.add_argument("--latency-threads", type=cli.positive_int,
                   help="CPU threads when measuring latency (default 1)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--jobs", type=cli.positive_int,
                   help="worker processes on this machine, sharing the study (default 1)")
    p.add_argument("--checkpoint-dir", help="where running trials keep their last epoch, to "
                   "resume after a kill or preemption (default: checkpoints/ beside a SQLite "
                   "study; a shared folder for workers on several machines)")
    p.add_argument("--checkpoint-every", type=cli.non_negative_float, metavar="SECONDS",
                   help="write a running trial's last epoch at most this often; kill -9 loses at "
                        "most this much training (default 2; 0: every epoch). Ctrl-C and SIGTERM "
                        "lose no finished epoch either way")
    p.add_argument("--config", type=Path, help="study spec TOML, e.g. studies/digits.toml")
    p.add_argument("--track", action="append", choices=TRACKERS,
                   help="log every trial to an experiment tracker: mlflow (MLFLOW_TRACKING_URI, "
                        "else ./mlflow.db) or tensorboard (runs/<study>/); repeat for both")
    p.add_argument("--warm-start", metavar="STUDY[@URL]",
                   help="a new study first tries the best configurations of this earlier study "
                        "(in studies/STUDY.db, or at the storage URL), fitted into its space")
    p.add_argument("--warm-start-top", type=cli.positive_int, metavar="K",
                   help=f"how many of them (default {DEFAULT_WARM_START_TOP})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--save-models", choices=SAVE_MODES, default="best",
                   help="trained weights kept as study artifacts under studies/artifacts/<study>/: "
                        "best (default: the best trial so far), all, or none")
    p.set_defaults(prog=prog)  # messages name the command as it was called
    return p


def _asked(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec keys, run keys) set by the config file and then by explicit flags."""
    spec, run = read_toml(args.config) if args.config else ({}, {})
    spec.update({k: getattr(args, k) for k in SPEC_FLAGS if getattr(args, k) is not None})
    run.update({k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None})
    return spec, run


def run_search(args: argparse.Namespace) -> int:
    from search.tracking.trackers import check_installed, start_tracking

    asked_spec, asked_run = _asked(args)
    run = RunOptions(**asked_run)
    check_installed(run.track)
    # Started first, so that the trackers load their libraries while we load ours; with --jobs
    # each worker starts its own.
    tracking = start_tracking(run.track if run.jobs == 1 else ())
    # Imported here, not above: --help and a refused flag answer without loading torch.
    from search.results.model_saver import save_failure
    from search.study.counts import count_states, finished
    from search.study.next_steps import resume_command
    from search.study.progress import summary
    from search.training.checkpoints import default_dir
    from search.training.device import resolve_device
    from search.training.session import open_search, worker_job
    from search.training.workers import build_objective, work

    device = resolve_device(run.device)
    opened = open_search(asked_spec, run, download=args.download, quiet=args.quiet)
    study, url = opened.study, opened.url
    name = study.study_name
    done = finished(count_states(study))
    if done >= run.trials:
        print(f"study {name!r} already has {done} finished trials (target {run.trials}); "
              "nothing to do. Raise --trials to add more.")
        print(summary(study, run.trials, url, 0.0))
        tracking.close(done=True)
        return cli.EXIT_OK
    if run.jobs > 1:
        return _run_jobs(study, run, url, args.save_models, show=not args.quiet, prog=args.prog)
    objective = build_objective(name, opened.spec, opened.data, device, args.save_models,
                                default_dir(name, url, run.checkpoint_dir), run.checkpoint_every)
    started = time.perf_counter()
    try:
        callback = work(worker_job(run, name, url, save_models=args.save_models), opened.storage,
                        study, objective, show=not args.quiet, tracking=tracking)
    except KeyboardInterrupt:
        done = finished(count_states(study))
        print(f"\ninterrupted: study {name!r} has {done}/{run.trials} finished trials; the running "
              "trial was stopped and continues from its last finished epoch on the next run. "
              f"Resume with: {resume_command(name, url, run.trials, track=run.track)}", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    print(summary(study, run.trials, url, time.perf_counter() - started))
    failure = save_failure(objective.on_trained)
    if failure is not None:
        return cli.fail(args.prog, f"{failure}; the study is intact (that trial completed): "
                        f"free some space and run the same command to go on", cli.EXIT_FAILURE)
    if callback.gave_up:
        return cli.fail(args.prog, f"stopped after {callback.consecutive_failures} failed trials in a "
                        f"row; last reason: {callback.last_failure}", cli.EXIT_FAILURE)
    return cli.EXIT_OK


def _run_jobs(study: optuna.Study, run: RunOptions, url: str, save_models: str, *, show: bool,
              prog: str) -> int:
    """--jobs N: N worker processes; the exit code says how they ended."""
    from search.study.counts import count_states, finished
    from search.study.next_steps import resume_command
    from search.study.progress import summary
    from search.training.session import worker_job
    from search.training.workers import run_jobs

    name = study.study_name
    started = time.perf_counter()
    jobs = [worker_job(run, name, url, i, save_models) for i in range(run.jobs)]
    codes = run_jobs(study, jobs, show)
    print(summary(study, run.trials, url, time.perf_counter() - started))
    if cli.EXIT_INTERRUPTED in codes:
        print(f"interrupted; resume with: "
              f"{resume_command(name, url, run.trials, run.jobs, track=run.track)}", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    bad = {i: code for i, code in enumerate(codes) if code != cli.EXIT_OK}
    if bad and finished(count_states(study)) < run.trials:
        return cli.fail(prog, f"workers ended with exit codes {bad} before the target",
                        cli.EXIT_FAILURE)
    return cli.EXIT_OK


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.quiet_libraries()
    interrupts.install()
    return cli.run_cli(args.prog, lambda: run_search(args))


if __name__ == "__main__":
    sys.exit(main())
