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


class FolderSearch:
    """Results from a folder catalog's table (the photos come from the server's real photo backend)."""

    def __init__(self, table):
        self.table = table

    def search_text(self, query, k):
        rows = self.table.head(k)
        return [{"sku_id": row.sku_id, "title": row.title, "product_type": row.product_type, "colour": row.colour,
                 "category": row.category, "score": 1.0 - i / 10} for i, row in enumerate(rows.itertuples())]

    def search_image(self, image, k):
        return self.search_text("photo", k)


def _serve(app):
    uvicorn = pytest.importorskip("uvicorn")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture()
def server_url():
    from ecmm.serving import Backends, create_app

    photo = lambda sku_id: np.full((32, 32, 3), (200, 30, 30), dtype=np.uint8)  # noqa: E731
    url, server, thread = _serve(create_app(Backends(search=FakeSearch, photo=lambda: photo)))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def folder_server_url(folder_catalog):
    """The server's own photo backend (``default_backends``) over the folder catalog; search is a fake."""
    from ecmm.data.folder import FolderSource
    from ecmm.serving import Backends, create_app, default_backends

    source = FolderSource.open(folder_catalog)
    photos = default_backends(source=source).photo
    url, server, thread = _serve(create_app(Backends(search=lambda: FolderSearch(source.table()), photo=photos)))
    yield url, source
    server.should_exit = True
    thread.join(timeout=10)


NO_CHROMIUM = not shutil.which(CHROMIUM) and not __import__("os").path.exists(CHROMIUM)


def _dom(url, tmp_path):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=10000", "--dump-dom", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(NO_CHROMIUM, reason="chromium is not installed")
def test_search_page_shows_result_thumbnails(server_url, tmp_path):
    result = _dom(f"{server_url}/?q=red%20bag", tmp_path)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'value="red bag"' in dom or "red bag" in dom  # the query reached the search box and the results
    images = re.findall(r"<img[^>]*>", dom)
    thumbnails = [tag for tag in images if 'class="result-image"' in tag]
    assert len(thumbnails) == 3, dom[-2000:]
    assert all("/photo/sku-" in tag for tag in thumbnails)
    assert all('data-loaded="1"' in tag for tag in thumbnails), "thumbnails did not load"
    assert "3 results for" in dom


@pytest.mark.skipif(NO_CHROMIUM, reason="chromium is not installed")
def test_search_page_shows_the_folder_catalogs_photos(folder_server_url, tmp_path):
    import urllib.request

    url, source = folder_server_url
    result = _dom(f"{url}/?q=shirt", tmp_path)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    thumbnails = [tag for tag in re.findall(r"<img[^>]*>", dom) if 'class="result-image"' in tag]
    expected = list(source.table()["sku_id"].astype(str).head(12))  # the page asks for k=12
    assert len(thumbnails) == len(expected), dom[-2000:]
    assert [re.search(r'/photo/([^"?]+)', tag).group(1) for tag in thumbnails] == expected
    assert all('data-loaded="1"' in tag for tag in thumbnails), "thumbnails did not load"
    from PIL import Image
    import io

    with urllib.request.urlopen(f"{url}/photo/{expected[0]}", timeout=30) as response:  # what the page showed
        shown = np.asarray(Image.open(io.BytesIO(response.read())))
    assert np.array_equal(shown, source.photos()[0, 0])  # the folder's first photo, as the source decodes it
