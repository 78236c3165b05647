"""Screenshot TensorBoard's HParams table of a real search.

Runs ``python -m search.run --trials N --track tensorboard`` on the digits in a scratch folder,
serves the result with ``tensorboard --logdir runs``, opens the HParams tab in headless Chromium
(Debian's, through Playwright) and saves a screenshot. (MLflow 3's UI opens an experiment on
its GenAI overview, not on its runs; no screenshot of it is taken.)

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


def shoot(url: str, ready: str, out: Path, width: int) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(url)
        page.get_by_text(ready).first.wait_for(timeout=90_000)
        page.wait_for_timeout(3000)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "search.run", "--trials", str(args.trials), "--quiet",
                        "--track", "tensorboard"], cwd=tmp, check=True)
        port = free_port()
        board = serve(["tensorboard", "--logdir", "runs", "--port", str(port)], tmp,
                      f"http://127.0.0.1:{port}/")
        try:
            # Wide enough for every column of the digits space and the four metrics.
            shot = out / "tensorboard-hparams.png"
            shoot(f"http://127.0.0.1:{port}/#hparams", "val_accuracy", shot, width=2400)
        finally:
            board.terminate()
    print(f"{shot} ({shot.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
