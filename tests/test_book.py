"""The Jupyter Book site: build it, check how the notebooks render, open it in headless Chromium.

Marker ``book`` on every test that executes notebooks or builds the site. The chapter-structure
checks at the end read only the source notebooks, so they run in the fast suite without it. The module fixture executes the notebooks in quick mode into ``book/notebooks``
(reusing copies that are still fresh, from ``make book`` or an earlier run) and builds the HTML
with ``book/build.py``; the tests then read the executed copies, the HTML files and what a real
browser (Debian's ``chromium``, driven over the DevTools protocol on a pipe) sees.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import html
import http.server
import importlib.util
import io
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest


REPOSITORY_DIR = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--hide-scrollbars", "--window-size=1280,900",
]
LOCAL_PATH_MARKERS = ("/root/", "/work/", "/home/", "/Users/", "C:\\Users\\")
# A tqdm text bar ends in its timing bracket: "[00:01<00:02, 3.10it/s, loss=0.2]" or "[00:01, 12it/s]".
PROGRESS_BAR = re.compile(r"\[(\d+:)?\d{2}:\d{2}(<(\?|(\d+:)?\d{2}:\d{2}))?, [^\]]*\]\s*$")


def _load_build_module():
    """Import ``book/build.py`` (the book folder is not a package)."""
    spec = importlib.util.spec_from_file_location("ecmm_book_build", REPOSITORY_DIR / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


build = _load_build_module()


@pytest.fixture(scope="module")
def site() -> Path:
    """Execute stale notebooks (quick mode) and build the HTML; return ``book/_build/html``."""
    build.execute_all(build.ExecutionOptions(quick=True), accept_either_mode=True)
    index = build.build_html()
    assert index.is_file(), "jupyter-book produced no index.html"
    return index.parent


def _write_notebook(path: Path, sources: list[str]) -> nbformat.NotebookNode:
    """Write a small notebook of a title cell and the given code cells."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Demo")] + [nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return notebook


@pytest.mark.book
def test_collapse_carriage_returns_keeps_the_final_frame() -> None:
    """A progress bar redrawn with carriage returns keeps only what the terminal shows last."""
    assert build.collapse_carriage_returns("\r  0%|  | 0/3\r100%|##| 3/3\n") == "100%|##| 3/3\n"
    assert build.collapse_carriage_returns("loss 0.5\nepoch 1\r\n") == "loss 0.5\nepoch 1\n"


@pytest.mark.book
def test_freshness_follows_cell_sources_and_mode(tmp_path: Path) -> None:
    """A copy is fresh for the same sources and mode; outputs and metadata do not count."""
    source, executed = tmp_path / "00_demo.ipynb", tmp_path / "book" / "00_demo.ipynb"
    notebook = _write_notebook(source, ["x = 1"])
    assert not build.is_fresh(source, executed, quick=True)
    _write_notebook(executed, ["x = 1"])
    stamp = {"sha256": build.source_hash(source), "quick": True, "seconds": 1.0}
    build.stamp_path(executed).write_text(json.dumps(stamp), encoding="utf-8")
    assert build.is_fresh(source, executed, quick=True) and build.is_fresh(source, executed, quick=None)
    assert not build.is_fresh(source, executed, quick=False)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    notebook.metadata["widgets"] = {}
    nbformat.write(notebook, source)
    assert build.is_fresh(source, executed, quick=True), "outputs or metadata made the copy stale"
    notebook.cells[1].source = "x = 2"
    nbformat.write(notebook, source)
    assert not build.is_fresh(source, executed, quick=True), "an edited cell left the copy fresh"


@pytest.mark.book
def test_the_kernel_inherits_the_callers_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ECMM_HOME, PATH and the offline flags reach the kernel; the mode is set by the build."""
    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "cache"))
    source = tmp_path / "src" / "00_env.ipynb"
    _write_notebook(source, ["import os\nprint(os.environ.get('ECMM_HOME'), os.environ.get('ECMM_QUICK'), 'PATH' in os.environ)"])
    executed = tmp_path / "book" / "notebooks" / "00_env.ipynb"
    build.execute_notebook(source, executed, build.ExecutionOptions(quick=True))
    printed = nbformat.read(executed, as_version=4).cells[1].outputs[0].text.split()
    assert printed == [str(tmp_path / "cache"), "1", "True"]


@pytest.mark.book
def test_a_cell_failing_without_a_message_is_reported(tmp_path: Path) -> None:
    """An assertion with no message still names the notebook and cell."""
    _write_notebook(tmp_path / "src" / "00_silent.ipynb", ["assert 1 == 2"])
    with pytest.raises(build.NotebookFailed, match=r"00_silent\.ipynb failed in cell 2 of 2.*AssertionError"):
        build.execute_all(build.ExecutionOptions(quick=True), tmp_path / "src", tmp_path / "book" / "notebooks")


@pytest.mark.book
def test_a_failing_cell_stops_the_build_naming_notebook_and_cell(tmp_path: Path) -> None:
    """Execution stops at the first failing cell, says where, and writes no executed copy."""
    _write_notebook(tmp_path / "src" / "00_broken.ipynb", ["x = 1", "raise ValueError('claim broken')"])
    executed_dir = tmp_path / "book" / "notebooks"
    with pytest.raises(build.NotebookFailed, match=r"00_broken\.ipynb failed in cell 3 of 3.*claim broken"):
        build.execute_all(build.ExecutionOptions(quick=True), tmp_path / "src", executed_dir)
    assert not (executed_dir / "00_broken.ipynb").exists()
    assert (tmp_path / "book" / "_build" / "failed" / "00_broken.ipynb").is_file()


def _executed_notebooks() -> list[tuple[str, nbformat.NotebookNode]]:
    """The executed copies, in order, as (name, notebook)."""
    return [(path.name, nbformat.read(build.EXECUTED_DIR / path.name, as_version=4))
            for path in build.find_notebooks()]


def _notebook_title(notebook: nbformat.NotebookNode) -> str:
    """The text of the first ``# Title`` line of a notebook's first markdown cell."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^# (.+)$", cell.source, flags=re.MULTILINE)
            assert match, "the first markdown cell must start with a '# Title' line"
            return re.sub(r"[*_`]", "", match.group(1)).strip()
    raise AssertionError("notebook has no markdown cell")


def _plain_quotes(text: str) -> str:
    """Undo Sphinx's smart quotes (’ ‘ “ ”) so titles compare with the notebook's source."""
    return text.translate(str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'}))


def _visible_text(markup: str) -> str:
    """Strip tags and unescape entities: roughly the text a reader sees."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def _output_texts(notebook: nbformat.NotebookNode):
    """Yield (cell index, kind, text) for every text-like output of every code cell."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                yield index, f"stream {output.name}", output.text
            elif output.output_type in ("execute_result", "display_data"):
                for mime in ("text/plain", "text/html", "text/markdown", "text/latex"):
                    if mime in output.data:
                        yield index, mime, str(output.data[mime])
            elif output.output_type == "error":
                yield index, "error", "\n".join(output.traceback)


@pytest.mark.book
def test_every_notebook_is_a_chapter_with_its_title_and_a_figure(site: Path) -> None:
    """Each notebook's page exists, shows the notebook's title and at least one rendered figure."""
    for name, notebook in _executed_notebooks():
        page = site / "notebooks" / name.replace(".ipynb", ".html")
        assert page.is_file(), f"{name}: no chapter page {page.name} in the built site"
        markup = page.read_text(encoding="utf-8")
        headings = [_plain_quotes(_visible_text(h)) for h in re.findall(r"<h1[^>]*>(.*?)</h1>", markup, re.S)]
        title = _notebook_title(notebook)
        assert any(title in heading for heading in headings), f"{name}: title {title!r} not in {headings}"
        figures = re.findall(r'<img[^>]+src="\.\./_images/[^"]+"', markup)
        assert figures, f"{name}: the chapter shows no figure (expected an <img> from a plot output)"


@pytest.mark.book
def test_reference_pages_hold_what_they_promise(site: Path) -> None:
    """Introduction, licences and glossary are built and carry their key content."""
    intro = _visible_text((site / "intro.html").read_text(encoding="utf-8"))
    for phrase in ("make book", "make test", "make lab", "offline", "hub"):
        assert phrase in intro, f"intro page does not mention {phrase!r}"
    licences = _visible_text((site / "licences.html").read_text(encoding="utf-8"))
    assert ("All emojis designed by OpenMoji – the open-source emoji and icon project. "
            "License: CC BY-SA 4.0") in licences
    for phrase in ("Apache-2.0", "CDLA-Sharing-1.0", "BSD", "MIT"):
        assert phrase in licences, f"licences page does not mention {phrase!r}"
    glossary = (site / "glossary.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", glossary, re.S)
    chinese_rows = [row for row in rows if re.search(r"[\u4e00-\u9fff]{2,}", row)]
    assert len(chinese_rows) >= 20, f"glossary has {len(chinese_rows)} Chinese terms, expected >= 20"


@pytest.mark.book
def test_site_loads_no_script_or_style_from_the_network(site: Path) -> None:
    """Every script and stylesheet is served from the built site, so the book reads offline."""
    remote = set()
    for page in site.rglob("*.html"):
        markup = page.read_text(encoding="utf-8")
        remote.update(re.findall(r'<script[^>]+src="(https?://[^"]+)"', markup))
        remote.update(re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="(https?://[^"]+)"', markup))
    assert not remote, (
        f"pages load {sorted(remote)} from the network; for MathJax install jupyter-server-mathjax "
        "(book/_ext/offline_mathjax.py then serves it from the site)"
    )


@pytest.mark.book
def test_executed_outputs_hold_no_local_paths_or_host_name(site: Path) -> None:
    """No output reveals where the book was built: home folders, checkouts, the host's name."""
    host_name = socket.gethostname()
    markers = LOCAL_PATH_MARKERS + ((host_name,) if len(host_name) >= 4 else ())
    problems = []
    for name, notebook in _executed_notebooks():
        for index, kind, text in _output_texts(notebook):
            for marker in markers:
                if marker in text:
                    line = next(line for line in text.splitlines() if marker in line)
                    problems.append(f"{name} cell {index} ({kind}): {line.strip()[:160]}")
    assert not problems, "outputs show local paths or the host name:\n" + "\n".join(problems)


@pytest.mark.book
def test_executed_outputs_have_no_stderr_noise(site: Path) -> None:
    """stderr holds nothing but progress bars rendered as text (no warnings, no logs)."""
    problems = []
    for name, notebook in _executed_notebooks():
        for index, kind, text in _output_texts(notebook):
            if kind != "stream stderr":
                continue
            noise = [line for line in text.splitlines() if line.strip() and not PROGRESS_BAR.search(line)]
            if noise:
                problems.append(f"{name} cell {index}: {noise[0].strip()[:160]}")
    assert not problems, "stderr output in executed notebooks:\n" + "\n".join(problems)


@pytest.mark.book
def test_progress_bars_show_only_their_final_state(site: Path) -> None:
    """Stream outputs carry no carriage returns: a redrawn bar shows once, as in JupyterLab."""
    for name, notebook in _executed_notebooks():
        for index, kind, text in _output_texts(notebook):
            if kind.startswith("stream"):
                assert "\r" not in text, f"{name} cell {index}: carriage return left in {kind}"


# --- the browser ----------------------------------------------------------------------------


class DevToolsPipe:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (DevTools protocol, JSON + NUL)."""

    def __init__(self, user_data_dir: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def connect_pipes() -> None:  # in the child: the browser reads fd 3 and writes fd 4
            read_copy = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_copy = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_copy, 3)
            os.dup2(write_copy, 4)

        command = [CHROMIUM, *CHROMIUM_FLAGS, "--remote-debugging-pipe",
                   f"--user-data-dir={user_data_dir}", "about:blank"]
        # close_fds=False keeps only inheritable descriptors: fds 3 and 4 made by dup2 above.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=connect_pipes, close_fds=False)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float = 30.0) -> dict:
        """Send one command and wait for its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for_event(self, method: str, timeout: float = 30.0) -> dict:
        """Wait for an event by name (one already received counts)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        return self._read_until(lambda m: m.get("method") == method, timeout)

    def collect(self, seconds: float) -> None:
        """Keep reading events for a while (late scripts, MathJax, images)."""
        try:
            self._read_until(lambda m: False, seconds)
        except TimeoutError:
            pass

    def _read_until(self, wanted, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError(f"no answer from Chromium within {timeout} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk

    def close(self) -> None:
        """Close the browser and the pipes."""
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)


PAGE_FACTS = """JSON.stringify({
  title: document.title,
  heading: (document.querySelector("main h1") || {}).innerText || "",
  images: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
  broken: Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src),
  formulas: document.querySelectorAll("span.math, div.math").length,
  typeset: document.querySelectorAll(".MathJax, .MathJax_Display, mjx-container").length,
  text: document.body.innerText.length,
})"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def site_url(site: Path):
    """Serve the built site on a local port, as a host would publish it."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def open_page(browser: DevToolsPipe, url: str, screenshot: Path) -> tuple[dict, list[str]]:
    """Load a page in a new tab, screenshot it, and report its facts and its problems.

    Returns:
        (facts from PAGE_FACTS, problems: exceptions, console errors, failed or remote requests)
    """
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session_id=session)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session_id=session)
    browser.events.clear()
    browser.send("Page.navigate", {"url": url}, session_id=session)
    browser.wait_for_event("Page.loadEventFired")
    browser.collect(2.0)
    facts = json.loads(browser.send("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True},
                                    session_id=session)["result"]["value"])
    image = browser.send("Page.captureScreenshot", {"format": "png"}, session_id=session)["data"]
    screenshot.write_bytes(base64.b64decode(image))
    problems = []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            problems.append(f"exception: {details.get('exception', {}).get('description', details['text'])}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error" \
                and not params["entry"].get("url", "").endswith("/favicon.ico"):  # the browser's own request
            problems.append(f"log error: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            local_prefix = url.split("/", 3)[:3]  # scheme, "", host:port of the page itself
            if not request_url.startswith(("data:", "blob:", "about:", "/".join(local_prefix))):
                problems.append(f"network request: {request_url}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed to load: {params.get('errorText')}")
    browser.send("Target.closeTarget", {"targetId": target})
    return facts, problems


def _check_screenshot(path: Path) -> None:
    """A real page: a PNG of the window's size, not one flat colour."""
    from PIL import Image

    with Image.open(io.BytesIO(path.read_bytes())) as image:
        assert image.size == (1280, 900), f"{path.name}: unexpected size {image.size}"
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, f"{path.name}: a near-blank screenshot"


@pytest.mark.book
def test_site_in_headless_chromium(site: Path, site_url: str) -> None:
    """The introduction and the first chapter load in Chromium without errors and look like pages."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run must install Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium); CI runs this test")
    screenshots = build.BOOK_DIR / "_build" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    first_notebook = build.find_notebooks()[0]
    first_title = _notebook_title(nbformat.read(build.EXECUTED_DIR / first_notebook.name, as_version=4))
    pages = [("intro", site / "intro.html", "ecmm"),
             (first_notebook.stem, site / "notebooks" / f"{first_notebook.stem}.html", first_title)]
    with tempfile.TemporaryDirectory(prefix="ecmm-chromium-") as profile:
        browser = DevToolsPipe(Path(profile))
        try:
            for name, page, expected_heading in pages:
                url = f"{site_url}/{page.relative_to(site).as_posix()}"
                facts, problems = open_page(browser, url, screenshots / f"{name}.png")
                assert not problems, f"{name}: " + "\n".join(problems)
                assert expected_heading in _plain_quotes(facts["heading"]), f"{name}: heading {facts['heading']!r}"
                assert not facts["broken"], f"{name}: broken images {facts['broken']}"
                assert facts["text"] > 500, f"{name}: the page shows almost no text"
                if facts["formulas"]:
                    assert facts["typeset"] > 0, f"{name}: {facts['formulas']} formulas left untypeset"
                _check_screenshot(screenshots / f"{name}.png")
            assert facts["images"] >= 1, f"{first_notebook.name}: no figure rendered in the browser"
        finally:
            browser.close()


# --- Chapter structure, from the source notebooks (fast: no execution, no marker) -----------------

SOURCE_NOTEBOOKS = sorted((REPOSITORY_DIR / "notebooks").glob("[0-9][0-9]_*.ipynb"))
YEAR = re.compile(r"\b(19|20)\d\d\b")
# Words about how the kit was made, which learners' text must not use.
PROCESS_WORDS = re.compile(r"\b(acceptance|course brief|so that nbval fails|the seed|seed article|seed's)\b",
                           flags=re.IGNORECASE)


def _markdown(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opens_with_objectives_prerequisites_and_run_time(path: Path) -> None:
    """The first cell: "**What you will be able to do**" with 3-5 numbered items, prerequisites, run time."""
    header = _markdown(nbformat.read(path, as_version=4))[0]
    assert "**What you will be able to do**" in header, f"{path.name}: no objectives in the first cell"
    objectives = header.split("**What you will be able to do**", 1)[1].split("**Prerequisites**", 1)[0]
    count = len(re.findall(r"^\d\. ", objectives, flags=re.M))
    assert 3 <= count <= 5, f"{path.name}: {count} numbered objectives, expected 3-5"
    assert "**Prerequisites**" in header and "**Run time on 2 CPU cores**" in header, path.name
    assert "PLACEHOLDER" not in header, f"{path.name}: the run time is not filled in"


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_has_an_equation_exercises_takeaways_and_reading(path: Path) -> None:
    """At least one display equation, 2-4 checked exercises with worked solutions, takeaways, papers."""
    notebook = nbformat.read(path, as_version=4)
    number = path.name[:2]
    markdown = _markdown(notebook)
    assert any("$$" in text for text in markdown), f"{path.name}: no display equation ($$...$$)"
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    checks = set(re.findall(rf"ecmm\.exercises\.check_{number}_([a-z])\(", code))
    assert 2 <= len(checks) <= 4, f"{path.name}: {len(checks)} exercises call ecmm.exercises.check_{number}_x"
    assert any(f"solutions/{number}_solutions" in text for text in markdown), f"{path.name}: no link to its solutions"
    assert any(text.startswith("## Key takeaways") for text in markdown), f"{path.name}: no '## Key takeaways'"
    reading = [text for text in markdown if text.startswith("## Further reading")]
    assert reading, f"{path.name}: no '## Further reading'"
    cited = [line for line in reading[0].splitlines() if line.startswith("- ") and YEAR.search(line)]
    assert len(cited) >= 3, f"{path.name}: {len(cited)} references with a year, expected >= 3"


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_text_speaks_of_the_subject(path: Path) -> None:
    """No word about how the kit was made ("acceptance", "course brief", "the seed" for the article)."""
    for text in _markdown(nbformat.read(path, as_version=4)):
        found = PROCESS_WORDS.search(text)
        assert found is None, f"{path.name}: {found.group(0)!r} in: {text[:80]!r}"


def test_solutions_are_put_behind_toggles() -> None:
    """Each ``## Exercise`` section's body goes into a closed dropdown; headings stay visible."""
    page = build.solutions_behind_toggles("# Solutions\n\nIntro.\n\n## Exercise 01-a: x\n\nBody a.\n\n"
                                          "```python\nprint(1)\n```\n\n## Exercise 01-b: y\n\nBody b.\n")
    assert page.startswith("# Solutions\n\nIntro.")
    assert page.count(":::{dropdown}") == 2 and "## Exercise 01-a: x\n\n:::{dropdown}" in page
    assert "Body a.\n\n```python\nprint(1)\n```\n:::" in page


def test_copy_solutions_writes_one_page_per_notebook(tmp_path: Path) -> None:
    (tmp_path / "src" / "solutions").mkdir(parents=True)
    (tmp_path / "src" / "solutions" / "01_solutions.md").write_text("# S\n\n## Exercise 01-a: x\n\nBody.\n")
    (tmp_path / "src" / "solutions" / "notes.txt").write_text("not a page")
    stale = tmp_path / "book" / "solutions" / "09_solutions.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    written = build.copy_solutions(tmp_path / "src", tmp_path / "book")
    assert [p.name for p in written] == ["01_solutions.md"] and not stale.exists()
    assert ":::{dropdown}" in written[0].read_text()


@pytest.mark.book
def test_solutions_and_run_times_are_pages_of_the_site(site: Path) -> None:
    """Each worked-solutions page is built with its solutions in dropdowns; the run-time table is built."""
    for source in sorted((REPOSITORY_DIR / "notebooks" / "solutions").glob("[0-9][0-9]_solutions.md")):
        page = site / "notebooks" / "solutions" / source.name.replace(".md", ".html")
        assert page.is_file(), f"no page for {source.name}"
        markup = page.read_text(encoding="utf-8")
        assert markup.count("sd-dropdown") >= source.read_text(encoding="utf-8").count("## Exercise"), page.name
    runtimes = _visible_text((site / "runtimes.html").read_text(encoding="utf-8"))
    assert "all notebooks" in runtimes and "quick" in runtimes
