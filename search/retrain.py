"""``python -m search.retrain best_config.json``: retrain a chosen configuration on train+val
and test it once, from the exported file alone (no study needed).

``python -m search.report`` runs the same code (search.results.retrain) after writing
``best_config.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search import cli, interrupts

PROG = "python -m search.retrain"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = cli.Parser(prog=prog, description="Retrain an exported configuration on train+val, "
                   "test it once, and save model.pt, model.pt2, model.onnx (with the deploy "
                   "extra) and metrics.json.")
    p.add_argument("config", type=Path, help="best_config.json written by python -m search.report")
    p.add_argument("--seeds", type=cli.positive_int, default=3, help="retrains, one per seed (default 3)")
    p.add_argument("--epochs", type=cli.positive_int, help="default: the epochs in the config")
    p.add_argument("--out", type=Path, help="output folder (default: the config's folder)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.set_defaults(prog=prog)  # messages name the command as it was called
    return p


def retrain_cli(args: argparse.Namespace) -> int:
    # Imported here, not above: --help and a refused flag answer without loading torch.
    from search.paths import check_output_folder
    from search.results.best_config import read_best_config
    from search.results.onnx_export import summary_line
    from search.results.retrain import SOMETIMES_WRITTEN, retrain
    from search.results.staging import staged
    from search.training.device import resolve_device

    best = read_best_config(args.config)
    device = resolve_device(args.device)
    out = args.out or args.config.parent
    check_output_folder(out)
    # A retrain stopped part-way leaves the folder as it was.
    with staged(out, owned=SOMETIMES_WRITTEN) as staging:
        result = retrain(best, args.seeds, staging, device, epochs=args.epochs,
                         done=out.parent / f".{out.name}.seeds")
    m = result.metrics
    print(f"test accuracy {m['test_accuracy_mean']:.4f} +- {m['test_accuracy_std']:.4f} over "
          f"{len(m['per_seed'])} seed(s); wrote {out / 'model.pt'}, model.pt2, "
          f"{'model.onnx, ' if 'ok' in m['onnx'] else ''}metrics.json")
    print(summary_line(m["onnx"]))
    return cli.EXIT_OK


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.quiet_libraries()
    interrupts.install()
    return cli.run_cli(args.prog, lambda: retrain_cli(args))


if __name__ == "__main__":
    sys.exit(main())
