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
