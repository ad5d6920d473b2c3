"""`make slides`: every notebook's reveal.js deck opens offline in headless Chromium without errors.

The decks are served from ``book/_build/slides`` by a loopback HTTP server that records every
request; Chromium loads each deck, and the test reads its console log and the page after reveal.js
started.  A deck passes when reveal.js is ready (its root element has the ``ready`` class), every
file the page asked for was found locally, and the console shows no error.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
SLIDES = ROOT / "book" / "_build" / "slides"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]
ERROR_WORDS = re.compile(r"uncaught|error|failed to load|refused|blocked", re.IGNORECASE)


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def decks() -> Path:
    """Build the decks once (``make slides``) and return their folder."""
    if shutil.which("npm") is None and not (ROOT / "build" / "slides-vendor" / ".installed").exists():
        pytest.skip("npm is needed once to fetch reveal.js")
    result = subprocess.run(["make", "slides"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return SLIDES


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the decks' folder and keeps (path, status) of every request."""

    requests: list = []

    def log_request(self, code="-", size="-"):
        self.requests.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def server(decks):
    handler = functools.partial(RecordingHandler, directory=str(decks))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(timeout=10)


def test_every_notebook_has_a_deck(decks):
    names = {path.name.replace(".slides.html", ".ipynb") for path in decks.glob("*.slides.html")}
    assert {path.name for path in notebooks()} <= names


def test_decks_reach_no_network(decks):
    for deck in decks.glob("*.slides.html"):
        html = deck.read_text(encoding="utf-8")
        loaded = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html)
        assert loaded, deck.name
        assert not [url for url in loaded if re.match(r"(https?:)?//", url)], (deck.name, loaded)


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
@pytest.mark.parametrize("notebook", [path.stem for path in notebooks()])
def test_deck_opens_without_console_errors(server, notebook, tmp_path):
    RecordingHandler.requests.clear()
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=15000", "--dump-dom", f"{server}/{notebook}.slides.html"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if ERROR_WORDS.search(line)]
    assert not errors, errors
    missing = [(path, status) for path, status in RecordingHandler.requests
               if status >= 400 and not path.startswith("/favicon")]
    assert not missing, missing
    assert re.search(r'<div class="reveal[^"]*\bready\b', result.stdout), "reveal.js did not start"
    assert result.stdout.count("<section") >= 2, "the deck has a single slide"
