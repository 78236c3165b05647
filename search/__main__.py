"""``cnn-search COMMAND ...`` (and ``python -m search COMMAND ...``): the five commands under one
name. Each subcommand takes exactly the flags of ``python -m search.COMMAND``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": "run (or resume) a search study",
    "report": "export, retrain and test a study's best configuration; write its report",
    "retrain": "retrain a best_config.json on train+val and test it once",
    "predict": "classify images with a saved model",
    "dashboard": "browse studies, trials and saved models in optuna-dashboard",
}
PROG = "cnn-search"


def usage() -> str:
    rows = "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
    return (f"usage: {PROG} COMMAND [FLAGS]\n\nSearch CNN hyperparameters with Optuna.\n\n"
            f"commands:\n{rows}\n\n'{PROG} COMMAND --help' lists a command's flags.\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROG}: error: unknown command {name!r}; commands: {', '.join(COMMANDS)} "
              "(see --help)", file=sys.stderr)
        return 2
    # A command module is imported only when asked for: each keeps its heavy imports lazy.
    command = importlib.import_module(f"search.{name}")
    return command.main(rest, prog=f"{PROG} {name}")


if __name__ == "__main__":
    sys.exit(main())
