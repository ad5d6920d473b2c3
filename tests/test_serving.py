"""The FastAPI app with injected fakes: every endpoint, good and bad input (no models loaded)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ecmm.app import LIMITS, Limits  # noqa: E402
from ecmm.serving import Backends, create_app  # noqa: E402

SKUS = {"sku-red": (255, 0, 0), "sku-blue": (0, 0, 255)}


class FakeSearch:
    def __init__(self):
        self.calls = []

    def search_text(self, query, k):
        self.calls.append(("text", query, k))
        return [{"sku_id": sku, "title": f"{sku} item", "product_type": "bag", "colour": sku[4:],
                 "category": "travel", "score": 1.0 - i / 10} for i, sku in enumerate(SKUS)][:k]

    def search_image(self, image, k):
        self.calls.append(("image", image.shape, k))
        red = image[..., 0].mean() > image[..., 2].mean()
        best = "sku-red" if red else "sku-blue"
        return [{"sku_id": best, "title": best, "product_type": "bag", "colour": best[4:], "category": "travel",
                 "score": 0.9}]


def fake_recommend(user_id, k):
    if user_id != "u00001":
        raise ValueError(f"unknown user {user_id!r}: use an id such as 'u00001'")
    return [{"sku_id": "sku-blue", "score": 0.5}][:k]


def fake_support(message, image):
    return {"intent": "track_order", "confidence": 0.9, "in_scope": True, "answer": f"echo: {message}",
            "product": None if image is None else f"photo {image.shape[1]}x{image.shape[0]}"}


def fake_photo(sku_id):
    return np.full((8, 8, 3), SKUS[sku_id], dtype=np.uint8)  # KeyError for unknown SKUs


def png_bytes(colour=(255, 0, 0), size=(16, 12), format="PNG"):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture()
def built():
    built = {}

    def factory(name, value):
        def make():
            built[name] = built.get(name, 0) + 1
            return value
        return make

    search = FakeSearch()
    backends = Backends(search=factory("search", search), recommend=factory("recommend", fake_recommend),
                        support=factory("support", fake_support), photo=factory("photo", fake_photo))
    client = TestClient(create_app(backends, Limits(image_bytes=5_000, query_characters=50)))
    return client, built, search


def test_backends_are_lazy_and_built_once(built):
    client, counts, _ = built
    assert client.get("/health").json() == {"status": "ok", "loaded": []}
    assert counts == {}
    client.get("/search", params={"q": "bag"})
    client.get("/search", params={"q": "bag"})
    assert counts == {"search": 1}
    assert client.get("/health").json()["loaded"] == ["search"]


def test_page_has_search_box():
    client = TestClient(create_app(Backends()))
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert 'id="query"' in response.text and "/photo/" in response.text


def test_search_text_returns_records(built):
    client, _, search = built
    response = client.get("/search", params={"q": "  red bag ", "k": 1})
    assert response.status_code == 200
    assert response.json() == [{"sku_id": "sku-red", "title": "sku-red item", "product_type": "bag",
                                "colour": "red", "category": "travel", "score": 1.0}]
    assert search.calls == [("text", "red bag", 1)]


@pytest.mark.parametrize("params, status, words", [
    ({"q": "   "}, 400, "empty"), ({}, 400, "empty"), ({"q": "x" * 51}, 400, "at most 50"),
    ({"q": "bag", "k": 0}, 422, "between 1 and 100"), ({"q": "bag", "k": 101}, 422, "between 1 and 100"),
    ({"q": "bag", "k": "many"}, 422, "k: "),
])
def test_search_text_bad_input(built, params, status, words):
    client, counts, _ = built
    response = client.get("/search", params=params)
    assert response.status_code == status
    assert words in response.json()["detail"]
    assert "search" not in counts  # refused before any model is loaded


def test_search_image_upload(built):
    client, _, search = built
    response = client.post("/search", params={"k": 3}, files={"image": ("blue.png", png_bytes((0, 0, 255)), "image/png")})
    assert response.status_code == 200 and response.json()[0]["sku_id"] == "sku-blue"
    assert search.calls == [("image", (12, 16, 3), 3)]
    raw = client.post("/search", content=png_bytes((255, 0, 0)), headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()[0]["sku_id"] == "sku-red"


@pytest.mark.parametrize("payload, content_type, status", [
    (b"x" * 6_000, "image/png", 413),  # over the 5,000-byte limit
    (b"not an image", "image/png", 415),
    (b"", "image/png", 400),
    (b"hello", "text/plain", 415),
    (png_bytes()[:45], "image/png", 400),  # a PNG cut inside its pixel data: identified, not decodable
])
def test_search_image_bad_uploads(built, payload, content_type, status):
    client, _, _ = built
    response = client.post("/search", files={"image": ("f", payload, content_type)})
    assert response.status_code == status and response.json()["detail"]


def test_search_image_without_file_is_a_message(built):
    client, _, _ = built
    response = client.post("/search")
    assert response.status_code == 415 and "image" in response.json()["detail"]
    response = client.post("/search", data={"other": "x"}, files={"file": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 400 and 'named "image"' in response.json()["detail"]


def test_recommend_known_and_unknown_user(built):
    client, _, _ = built
    assert client.get("/recommend", params={"user": "u00001", "k": 5}).json() == [{"sku_id": "sku-blue", "score": 0.5}]
    assert client.get("/recommend", params={"user": "  u00001 "}).status_code == 200  # stripped, as on the CLI
    response = client.get("/recommend", params={"user": "nobody"})
    assert response.status_code == 404 and "unknown user" in response.json()["detail"]
    assert client.get("/recommend").status_code == 400


def test_support_json_multipart_and_base64(built):
    client, _, _ = built
    reply = client.post("/support", json={"message": "where is my order EC-123456?"}).json()
    assert reply["intent"] == "track_order" and reply["answer"].startswith("echo: where") and reply["product"] is None
    reply = client.post("/support", data={"message": "it arrived broken"},
                        files={"image": ("p.png", png_bytes(), "image/png")}).json()
    assert reply["product"] == "photo 16x12"
    encoded = base64.b64encode(png_bytes(size=(10, 10))).decode()
    assert client.post("/support", json={"message": "broken", "image": encoded}).json()["product"] == "photo 10x10"


@pytest.mark.parametrize("kwargs, status", [
    ({"json": {"message": "  "}}, 400), ({"json": {}}, 400), ({"json": ["message"]}, 400),
    ({"json": {"message": 3}}, 400), ({"json": {"message": "x" * 1_001}}, 400),
    ({"json": {"message": "hi", "image": "%%%"}}, 400),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b"[" * 20_000, "headers": {"content-type": "application/json"}}, 400),  # too deep for json
    ({"content": b"message=hi", "headers": {"content-type": "text/plain"}}, 415),
    ({"data": {"message": "hi"}, "files": {"image": ("p.png", b"x" * 6_000, "image/png")}}, 413),
])
def test_support_bad_input(built, kwargs, status):
    client, _, _ = built
    response = client.post("/support", **kwargs)
    assert response.status_code == status and response.json()["detail"]


def test_photo_endpoint(built):
    client, _, _ = built
    response = client.get("/photo/sku-red")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (8, 8, 3) and tuple(image[0, 0]) == (255, 0, 0)
    missing = client.get("/photo/sku-green")
    assert missing.status_code == 404 and missing.json()["detail"] == "unknown SKU 'sku-green'"


def test_missing_backend_is_503():
    client = TestClient(create_app(Backends(search=None)))
    response = client.get("/search", params={"q": "bag"})
    assert response.status_code == 503 and "no search backend" in response.json()["detail"]


def test_limits_validation():
    with pytest.raises(ValueError, match="positive"):
        Limits(search_k=0)
    with pytest.raises(ValueError, match="format"):
        Limits(image_formats=())


def test_an_unexpected_error_is_json_not_a_bare_500():
    class Broken:
        def search_text(self, query, k):
            raise ZeroDivisionError("a bug")

    client = TestClient(create_app(Backends(search=lambda: Broken())), raise_server_exceptions=False)
    response = client.get("/search", params={"q": "bag"})
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert "ZeroDivisionError" in response.json()["detail"] and "Internal Server Error" not in response.text
    assert LIMITS.search_k == 100  # the default table is untouched by the app


# --- hostile but fair input: each case is the exact request that used to fail -------------------

def bomb_png(width=30_000, height=30_000):
    """74 bytes: a PNG header that claims ``width x height`` RGB pixels, and almost no data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 16)[:17].ljust(17, b"\x00"))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + chunk(b"IEND", b"")


def real_client(**limits):
    backends = Backends(search=lambda: FakeSearch(), recommend=lambda: fake_recommend,
                        support=lambda: fake_support, photo=lambda: fake_photo)
    return TestClient(create_app(backends, Limits(**limits)), raise_server_exceptions=False)


def test_a_decompression_bomb_is_400_on_every_upload_path():
    bomb = bomb_png()
    assert len(bomb) == 74
    client = real_client()
    responses = [client.post("/search", files={"image": ("bomb.png", bomb, "image/png")}),
                 client.post("/support", data={"message": "hi"}, files={"image": ("bomb.png", bomb, "image/png")}),
                 client.post("/support", json={"message": "hi", "image": base64.b64encode(bomb).decode()})]
    for response in responses:
        assert response.status_code == 400 and "4096x4096" in response.json()["detail"]


def _stream(app, path, content_type, first, filler, total):
    """POST a chunked body (1 MB chunks) through httpx's ASGI transport; count the chunks read."""
    import asyncio

    import httpx

    sent = []

    async def body():
        yield first
        while sum(sent) < total:
            sent.append(1 << 20)
            yield filler * (1 << 20)

    async def post():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body(), headers={"content-type": content_type})

    response = asyncio.run(post())
    return response, sum(sent)


@pytest.mark.parametrize("path, content_type, first, total", [
    ("/support", "application/json", b'{"message": "hi", "pad": "', 200 << 20),  # 200 MB JSON
    ("/search", "multipart/form-data; boundary=XyZ",
     b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n',
     100 << 20),  # 100 MB upload
])
def test_a_chunked_body_over_the_cap_is_413_before_it_is_read(path, content_type, first, total):
    app = create_app(Backends(search=lambda: FakeSearch(), support=lambda: fake_support))
    response, read = _stream(app, path, content_type, first, b"x", total)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    assert read <= LIMITS.request_bytes + (2 << 20)  # stopped within a chunk or two of the cap
    assert read < total / 20


def test_a_declared_length_over_the_cap_is_413_at_once(built):
    client, _, _ = built
    response = client.post("/support", content=b"{}", headers={"content-type": "application/json",
                                                               "content-length": str(10**9)})
    assert response.status_code == 413


def test_an_unpaired_surrogate_is_400_not_500():
    client = real_client()
    response = client.post("/support", content=b'{"message": "where \\ud800 order"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]
    assert client.get("/search", params={"q": "red \udcff bag".encode("utf-8", "surrogatepass")}).status_code < 500


def _damaged_home(tmp_path, monkeypatch):
    """A temporary ECMM_HOME holding a shop model, recommender embeddings and support weights,
    each truncated after its card was written; the registry is kept from rebuilding them."""
    from ecmm.artifacts import write_artifact
    from ecmm.assets import asset_dir

    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("ecmm.assets.ensure_asset", lambda name, **kwargs: asset_dir(name))
    files = {"shop_clip": "model.safetensors", "recommender": "embeddings.safetensors",
             "fitted_recommender": "split.npz", "support": "model.safetensors",
             "query_encoder": "clip/text_encoder.onnx", "support_encoder": "classifier/text_encoder.onnx"}

    def write(temporary, file):
        (temporary / file).parent.mkdir(parents=True, exist_ok=True)
        (temporary / file).write_bytes(b"w" * 4096)

    for name, file in files.items():
        folder = write_artifact(asset_dir(name), lambda temporary, file=file: write(temporary, file),
                                {"asset": name, "exported": True})
        (folder / file).write_bytes(b"w" * 100)  # truncated
    return files


def test_a_damaged_cache_is_503_naming_the_repair_command(tmp_path, monkeypatch):
    from ecmm.artifacts import REPAIR_COMMAND, read_card
    from ecmm.assets import asset_dir
    from ecmm.serving import default_backends

    _damaged_home(tmp_path, monkeypatch)
    client = TestClient(create_app(default_backends()), raise_server_exceptions=False)
    for response in (client.get("/search", params={"q": "bag"}), client.get("/recommend", params={"user": "u00001"}),
                     client.post("/support", json={"message": "where is my order?"})):
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert REPAIR_COMMAND in detail and "has 100 bytes" in detail, detail
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "not ready"
    assert {"shop_clip", "fitted_recommender", "support"} <= set(health.json()["not_ready"])
    assert health.json()["repair"] == REPAIR_COMMAND


def test_docs_load_nothing_remote():
    client = real_client()
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    page = client.get("/").text
    assert "jsdelivr" not in page and "unpkg" not in page and "/docs" in page  # the page says why
    assert 'src="http' not in page and 'href="http' not in page and "//" not in page.replace("://", "")


@pytest.mark.parametrize("format, status", [("PNG", 200), ("JPEG", 200), ("WEBP", 200), ("GIF", 415), ("BMP", 415),
                                            ("TIFF", 415), ("ICO", 415), ("PPM", 415)])
def test_only_png_jpeg_and_webp_are_accepted(format, status):
    client = real_client()
    payload = png_bytes(size=(16, 16), format=format)
    assert client.post("/search", files={"image": ("photo", payload, "image/png")}).status_code == status
    response = client.post("/support", data={"message": "broken"}, files={"image": ("photo", payload, "image/png")})
    assert response.status_code == status
    if status == 415:
        assert "PNG, JPEG or WebP" in response.json()["detail"]


def test_security_headers_on_pages_answers_and_errors():
    client = real_client()
    for response in (client.get("/"), client.get("/search", params={"q": "bag"}), client.get("/search"),
                     client.get("/health"), client.get("/nowhere")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "http" not in policy


def test_the_page_script_and_style_are_the_ones_the_policy_allows():
    from ecmm.serving_http import SECURITY_HEADERS, csp_hash
    from ecmm.serving_page import PAGE_HTML, PAGE_SCRIPT, PAGE_STYLE

    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert f"<script>{PAGE_SCRIPT}</script>" in PAGE_HTML and csp_hash(PAGE_SCRIPT) in policy
    assert f"<style>{PAGE_STYLE}</style>" in PAGE_HTML and csp_hash(PAGE_STYLE) in policy


def test_recommend_messages_keep_their_quotes_and_say_what_to_type():
    client = real_client()
    unknown = client.get("/recommend", params={"user": "nobody"}).json()["detail"]
    assert unknown == "unknown user 'nobody': use an id such as 'u00001'"
    empty = client.get("/recommend", params={"user": "  "}).json()["detail"]
    assert empty == "the user id is empty: type a user id such as u00042"
    assert "looking for" not in empty


# --- micro-batching of text searches ----------------------------------------------------------------

def _slow_search(delay=0.02):
    """The four-row CatalogSearch of test_search with a text tower that takes ``delay`` s per call."""
    import time

    from test_search import CATALOG, FakeClip, photos

    from ecmm.search import CatalogSearch

    class SlowClip(FakeClip):
        def encode_text(self, tokens, normalize=True):
            time.sleep(delay)
            return super().encode_text(tokens, normalize)

    model = FakeClip()
    search = CatalogSearch.build(model, model.preprocess, model.tokenizer, CATALOG, photos(), device="cpu")
    search.text_side()  # the catalog side, at full speed
    search.model = SlowClip()
    return search


def test_concurrent_queries_are_batched_and_each_gets_its_own_answer():
    import threading

    from ecmm.search import results_to_records
    from ecmm.serving_http import BatchedSearch

    search = _slow_search()
    queries = ["red necktie", "blue backpack", "warm neck", "backpack under 30", "scarf", "red", "blue scarf", "neck"]
    modes = [None, "dense", "lexical", None, "hybrid", None, "dense", None]
    expected = [results_to_records(search.search_text(query, 3, mode)) for query, mode in zip(queries, modes)]
    batched = BatchedSearch(search, max_batch=4)
    answers = [None] * len(queries)
    start = threading.Barrier(len(queries))

    def ask(position):
        start.wait()
        for _ in range(3):
            answers[position] = batched.search_text(queries[position], 3, modes[position])

    threads = [threading.Thread(target=ask, args=(position,)) for position in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batched.close()
    assert answers == expected  # every request its own answer, equal to the sequential one
    assert max(batched.batch_sizes) > 1 and max(batched.batch_sizes) <= 4
    assert sum(size * count for size, count in batched.batch_sizes.items()) == 3 * len(queries)


def test_a_bad_query_fails_alone_and_a_lone_client_does_not_wait():
    import threading
    import time

    from ecmm.serving_http import BatchedSearch

    batched = BatchedSearch(_slow_search(delay=0.05), max_wait=0.5)
    errors, answers = [], []

    def ask(query):
        try:
            answers.append(batched.search_text(query, 1))
        except ValueError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=ask, args=(query,)) for query in ("red necktie", " ", "blue backpack", "x" * 300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 2 and len(errors) == 2 and any("empty" in error for error in errors)
    batched._last_batch = 1  # what a lone client leaves behind after its first request
    started = time.perf_counter()
    for _ in range(3):
        assert batched.search_text("red necktie", 1)[0]["title"] == "Red necktie"
    assert time.perf_counter() - started < 1.0  # three calls, each far below the 0.5 s wait
    batched.close()


def test_the_app_serves_a_batched_search():
    from ecmm.serving_http import BatchedSearch

    client = TestClient(create_app(Backends(search=lambda: BatchedSearch(FakeSearch()))))
    response = client.get("/search", params={"q": "red bag", "k": 1})
    assert response.status_code == 200 and response.json()[0]["sku_id"] == "sku-red"
    assert client.get("/search", params={"q": "  "}).status_code == 400
