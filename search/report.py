"""``python -m search.report``: export a finished study's best configuration, retrain it on
train+val, test it once, and write a report people can read.

It runs no search trials. Everything lands in ``reports/<study>/``: best_config.json,
model.pt, model.pt2, model.onnx (with the deploy extra), metrics.json, report.md,
report.html and plots/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search import cli, interrupts

PROG = "python -m search.report"
# metrics.json's figures that also go to the study's MLflow run.
TEST_METRICS = ("test_accuracy_mean", "test_accuracy_std")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = cli.Parser(prog=prog, description="Export the best configuration of a study, retrain it, "
                   "test it once and write reports/<study>/.")
    p.add_argument("--study", default="digits", help="study name (default digits)")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--trial", type=cli.non_negative_int, metavar="N",
                   help="export trial N (complete) instead of the default choice: the most "
                        "accurate trial, or in a multi-objective study the cheapest Pareto trial "
                        "nearly as accurate as the most accurate")
    p.add_argument("--seeds", type=cli.positive_int, default=3, help="retrains, one per seed (default 3)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="root folder (default reports)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--track", choices=("mlflow",),
                   help="attach the report to the study's MLflow run; done anyway for a study "
                        "run with --track mlflow")
    p.set_defaults(prog=prog)  # messages name the command as it was called
    return p


def report_cli(args: argparse.Namespace) -> int:
    # Imported here, not above: --help and a refused flag answer without loading torch.
    from search.paths import check_output_folder
    from search.results.onnx_export import summary_line
    from search.results.reporting import write_report
    from search.study.storage import check_study_name, default_storage
    from search.study.studies import open_existing, spec_of
    from search.tracking.trackers import check_installed, log_report, report_to_mlflow
    from search.training.device import resolve_device

    check_installed([args.track] if args.track else [])
    name = check_study_name(args.study)
    check_output_folder(args.out / name, "report folder")
    url = args.storage or default_storage(name)
    study = open_existing(name, url)
    spec = spec_of(study)
    report = write_report(study, spec, url, out_root=args.out, seeds=args.seeds,
                          device=resolve_device(args.device), trial_number=args.trial)
    m, trial = report.metrics, report.trial
    print(f"trial {trial.number} ({report.why}): val_accuracy {trial.values[0]:.4f}; test "
          f"accuracy {m['test_accuracy_mean']:.4f} +- {m['test_accuracy_std']:.4f} over "
          f"{args.seeds} seed(s); {m['n_params']:,} parameters, {m['macs']:,} MACs, "
          f"{m['latency_ms']:.3f} ms ({m['latency_setup']})")
    check = m["onnx"]
    onnx = "model.onnx " if "ok" in check else ""
    print(f"wrote {report.folder}/: best_config.json model.pt model.pt2 {onnx}metrics.json "
          f"report.md report.html plots/ in {report.seconds:.1f} s")
    print(summary_line(check))
    print("attached model.pt and report.html to the study (optuna-dashboard: Study Artifacts)")
    if report_to_mlflow(study, asked=args.track == "mlflow"):
        where = log_report(study, report.folder, {k: m[k] for k in TEST_METRICS})
        if where is not None:
            print(f"logged the report to the study's {where}")
    return cli.EXIT_OK


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.quiet_libraries()
    interrupts.install()
    return cli.run_cli(args.prog, lambda: report_cli(args))


if __name__ == "__main__":
    sys.exit(main())
