"""Fuzzing the input layer, the command and the API with hypothesis (bounded examples, stub models):
no 5xx, no traceback, always a message."""

import base64
import contextlib
import io
import os
import struct
import zlib

import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ecmm.app  # noqa: E402
from ecmm.app import LIMITS  # noqa: E402
from ecmm.cli import main  # noqa: E402
from ecmm.validation import InputError, check_image_bytes, check_k, check_query, check_sku_ids, check_user_id  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.one_of(st.characters(), surrogates), max_size=40),  # lone surrogates included
    st.binary(max_size=60).map(os.fsdecode),  # what argv holds for bytes that are not UTF-8
    st.integers(0, 2_000).map(lambda n: "x" * n),  # around the limits
)
numbers = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=8), st.floats(allow_nan=True), st.booleans())


def _image(format, size):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=format)
    return buffer.getvalue()


def _header(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 32)) + chunk(b"IEND", b""))


@st.composite
def image_bytes(draw):
    """Random bytes, valid photos, photos with flipped or cut bytes, headers claiming any size."""
    kind = draw(st.sampled_from(["random", "valid", "flipped", "cut", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=3_000))
    if kind == "header":
        return _header(draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1)))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    payload = bytearray(_image(draw(st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "BMP"])), size))
    if kind == "flipped":
        for position in draw(st.lists(st.integers(0, len(payload) - 1), min_size=1, max_size=8)):
            payload[position] ^= draw(st.integers(1, 255))
    elif kind == "cut":
        payload = payload[:draw(st.integers(0, len(payload)))]
    return bytes(payload)


@FUZZ
@given(text=texts)
def test_text_is_clean_or_refused_with_a_message(text):
    try:
        clean = check_query(text)
    except InputError as error:
        assert str(error) and error.status == 400
        return
    assert 0 < len(clean) <= LIMITS.query_characters and clean == clean.strip()
    clean.encode("utf-8")  # always encodable


@FUZZ
@given(k=numbers, user=texts, cart=texts)
def test_k_ids_and_carts(k, user, cart):
    for check in (lambda: check_k(k, LIMITS.search_k), lambda: check_user_id(user), lambda: check_sku_ids(cart)):
        try:
            value = check()
        except InputError as error:
            assert str(error)
            continue
        assert value is not None


@FUZZ
@given(payload=image_bytes())
def test_images_decode_within_the_caps_or_are_refused(payload):
    try:
        pixels = check_image_bytes(payload)
    except InputError as error:
        assert str(error) and error.status in (400, 413, 415)
        return
    height, width, channels = pixels.shape
    assert channels == 3 and max(height, width) <= LIMITS.image_side and height * width <= LIMITS.image_pixels


class Results(list):
    def to_string(self, index=False):
        return "results"


class StubSearch:
    def search_text(self, query, k, mode=None):
        return Results([{"sku_id": "S1", "title": query[:10], "product_type": "bag", "colour": "red",
                         "category": "travel", "score": 0.5}][:k])

    def search_image(self, image, k):
        return self.search_text("photo", k)

    def answer(self, query, k, mode=None):
        return self.search_text(query, k, mode), {}


class StubAssistant:
    def reply(self, message, image=None):
        from ecmm.service.replies import Reply, Slots

        return Reply(intent="track_order", confidence=0.9, in_scope=True, answer=message[:20], product=None,
                     slots=Slots())


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@FUZZ
@given(text=texts, k=st.integers(-5, 10**6), payload=image_bytes())
def test_the_command_answers_every_input_with_an_exit_status_and_a_line(tmp_path_factory, monkeypatch, text, k,
                                                                      payload):
    monkeypatch.setattr(ecmm.app, "load_search", lambda **kwargs: StubSearch())
    monkeypatch.setattr(ecmm.app, "load_support", lambda **kwargs: StubAssistant())
    photo = tmp_path_factory.mktemp("fuzz") / "photo.png"
    photo.write_bytes(payload)
    for argv in (["search", "--k", str(k), "--", text], ["support", "--json", "--", text],
                 ["search", "--image", str(photo)],
                 ["support", "it broke", "--image", str(photo), "--json"]):
        code, out, err = _run(argv)
        assert code in (0, 2) and "Traceback" not in err
        assert (code == 0 and out) or (code == 2 and len(err.strip().splitlines()) == 1)


@pytest.fixture(scope="module")
def api():
    from fastapi.testclient import TestClient

    from ecmm.serving import Backends, create_app
    from test_serving import fake_photo, fake_recommend, fake_support

    backends = Backends(search=lambda: StubSearch(), recommend=lambda: fake_recommend, support=lambda: fake_support,
                        photo=lambda: fake_photo)
    return TestClient(create_app(backends), raise_server_exceptions=False)


def _answered(response):
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail


@FUZZ
@given(text=texts, k=numbers, payload=image_bytes())
def test_the_api_never_answers_5xx_and_always_says_why(api, text, k, payload):
    query = text.encode("utf-8", "surrogatepass")  # travels as (possibly invalid) UTF-8 bytes in the URL
    _answered(api.get("/search", params={"q": query, "k": str(k)}))
    _answered(api.get("/recommend", params={"user": query, "k": str(k)}))
    _answered(api.get(f"/photo/{text.encode('utf-8', 'surrogatepass').hex()[:80]}"))
    _answered(api.post("/search", files={"image": ("photo", payload, "image/png")}))
    import json

    body = json.dumps({"message": text, "image": base64.b64encode(payload).decode()})  # ASCII escapes
    _answered(api.post("/support", content=body, headers={"content-type": "application/json"}))
    _answered(api.post("/support", data={"message": text[:50].encode("utf-8", "surrogatepass").decode("utf-8", "replace")},
                       files={"image": ("photo", payload, "image/jpeg")}))
    _answered(api.post("/support", content=payload, headers={"content-type": "application/json"}))
