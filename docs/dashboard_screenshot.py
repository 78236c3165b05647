"""Screenshot the dashboard while a real search runs, and check that the page updates live.

Starts ``python -m search.run`` on the digits in a scratch folder, then
``python -m search.dashboard`` once the study exists, opens the study page in headless
Chromium (Debian's, through Playwright), counts the trials the page shows twice, 30 s apart,
and saves a screenshot.

    python docs/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.5)


def serving(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/api/meta", timeout=5).close()
        return True
    except OSError:
        return False


def finished_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state IN "
                                      "('COMPLETE', 'PRUNED')").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def shown_trials(page: Page) -> int:
    """Trials listed by the history plot's intermediate-values legend ("trial #N")."""
    return len(set(re.findall(r"trial #(\d+)", page.inner_text("body"))))


def snapshot(base: str, out: Path, db: Path) -> list[tuple[int, int]]:
    """(trials in the study, trials on the page) when the page loads and 30 s later."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{base}/dashboard/studies/1")
        page.get_by_text("val_accuracy").first.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)
        seen = [(finished_trials(db), shown_trials(page))]
        page.wait_for_timeout(30_000)  # live update polls the API every 10 s
        seen.append((finished_trials(db), shown_trials(page)))
        page.screenshot(path=str(out))
        browser.close()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    out = parser.parse_args().out.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        search = subprocess.Popen([sys.executable, "-m", "search.run", "--trials", "100", "--quiet"],
                                  cwd=tmp, stdout=subprocess.DEVNULL)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        db = Path(tmp) / "studies" / "digits.db"
        wait_for(lambda: finished_trials(db) >= 3)
        dashboard = subprocess.Popen([sys.executable, "-m", "search.dashboard", "--port",
                                      str(port)], cwd=tmp, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: serving(base))
            seen = snapshot(base, out, db)
        finally:
            search.send_signal(signal.SIGINT)
            dashboard.terminate()
            search.wait(timeout=60)
            dashboard.wait(timeout=60)
    for when, (stored, shown) in zip(("on load", "30 s later"), seen, strict=True):
        print(f"{when}: {stored} finished trials stored, {shown} trials on the study page")
    print(f"screenshot {out} ({out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
