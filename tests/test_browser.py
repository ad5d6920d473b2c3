"""The served search page in headless Chromium: a query in, result thumbnails out (loopback only).

Chromium loads ``/?q=QUERY``; the page puts the query in its search box and submits the form (the
same handler as pressing Enter), fetches ``/search`` and shows one ``/photo/{sku_id}`` thumbnail per
result.  ``--dump-dom`` prints the page after the virtual-time budget, so the test reads what a user
would see.  Backends are tiny fakes: no model is loaded.
"""

import re
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.book

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


class FakeSearch:
    def search_text(self, query, k):
        return [{"sku_id": f"sku-{i}", "title": f"{query} #{i}", "product_type": "bag", "colour": "red",
                 "category": "travel", "score": 1.0 - i / 10} for i in range(3)][:k]

    def search_image(self, image, k):
        return self.search_text("photo", k)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def server_url():
    uvicorn = pytest.importorskip("uvicorn")
    from ecmm.serving import Backends, create_app

    photo = lambda sku_id: np.full((32, 32, 3), (200, 30, 30), dtype=np.uint8)  # noqa: E731
    app = create_app(Backends(search=FakeSearch, photo=lambda: photo))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(not shutil.which(CHROMIUM) and not __import__("os").path.exists(CHROMIUM),
                    reason="chromium is not installed")
def test_search_page_shows_result_thumbnails(server_url, tmp_path):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=10000", "--dump-dom", f"{server_url}/?q=red%20bag"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'value="red bag"' in dom or "red bag" in dom  # the query reached the search box and the results
    images = re.findall(r"<img[^>]*>", dom)
    thumbnails = [tag for tag in images if 'class="result-image"' in tag]
    assert len(thumbnails) == 3, dom[-2000:]
    assert all("/photo/sku-" in tag for tag in thumbnails)
    assert all('data-loaded="1"' in tag for tag in thumbnails), "thumbnails did not load"
    assert "3 results for" in dom
