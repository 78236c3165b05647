"""Screenshot MLflow's runs table and TensorBoard's HParams table of one real search.

Runs ``python -m search.run --trials N --track mlflow --track tensorboard`` on the digits in a
scratch folder, serves the result with ``mlflow ui`` and ``tensorboard --logdir runs``, opens
each in headless Chromium (Debian's, through Playwright) and saves a screenshot. MLflow 3's UI
opens an experiment on its overview; the runs table is asked for by its address, with the
study's run expanded to show its trials.

    python docs/tracking_screenshot.py [--trials 30] [--out docs/images]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from dashboard_screenshot import ARGS, CHROMIUM, free_port, wait_for  # docs/ is on sys.path
from playwright.sync_api import sync_playwright


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except OSError:
        return False


def serve(command: list[str], cwd: str, url: str) -> subprocess.Popen:
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: answers(url), timeout=120)
    return server


def shoot(url: str, ready: str, out: Path, width: int, expand: str | None = None) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(url)
        page.get_by_text(ready).first.wait_for(timeout=90_000)
        page.wait_for_timeout(3000)
        if expand is not None:  # a parent run's row: its expander shows the nested runs
            row = page.get_by_role("row").filter(has_text=expand).first
            row.get_by_role("button").first.click()
            page.wait_for_timeout(3000)
        page.screenshot(path=str(out))
        browser.close()


def experiment_id(folder: str, name: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{folder}/mlflow.db").get_experiment_by_name(name).experiment_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "search.run", "--trials", str(args.trials), "--quiet",
                        "--track", "mlflow", "--track", "tensorboard"], cwd=tmp, check=True)
        shots = [out / "mlflow-runs.png", out / "tensorboard-hparams.png"]
        port = free_port()
        ui = serve(["mlflow", "ui", "--port", str(port)], tmp, f"http://127.0.0.1:{port}/")
        try:
            shoot(f"http://127.0.0.1:{port}/#/experiments/{experiment_id(tmp, 'digits')}/runs",
                  "digits", shots[0], width=1800, expand="digits")
        finally:
            ui.terminate()
        port = free_port()
        board = serve(["tensorboard", "--logdir", "runs", "--port", str(port)], tmp,
                      f"http://127.0.0.1:{port}/")
        try:
            # Wide enough for every column of the digits space and the four metrics.
            shoot(f"http://127.0.0.1:{port}/#hparams", "val_accuracy", shots[1], width=2400)
        finally:
            board.terminate()
    for shot in shots:
        print(f"{shot} ({shot.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
