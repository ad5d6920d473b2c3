"""A bounded load test of the server on 127.0.0.1: uvicorn in a thread with stub models, two client
threads, a few hundred mixed requests with bad input among them. Zero 5xx, zero dropped
connections, and the server answers a good request right after every bad one. Prints the median
and 95th-percentile latency (timings are reported, not asserted)."""

import base64
import json
import socket
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from ecmm.app import LIMITS  # noqa: E402
from ecmm.serving import Backends, create_app  # noqa: E402
from test_serving import FakeSearch, bomb_png, fake_photo, fake_recommend, fake_support, png_bytes  # noqa: E402

REQUESTS_PER_CLIENT = 150
CLIENTS = 2


@pytest.fixture(scope="module")
def server():
    """``(base_url, server)``: the app served by uvicorn on a free port of 127.0.0.1."""
    backends = Backends(search=lambda: FakeSearch(), recommend=lambda: fake_recommend, support=lambda: fake_support,
                        photo=lambda: fake_photo)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(backends), log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "the server did not start within 30 s"
    yield f"http://127.0.0.1:{port}", instance
    instance.should_exit = True
    thread.join(timeout=10)
    listener.close()


def _oversized():
    yield b'{"message": "hi", "pad": "'
    for _ in range(8):  # 8 MB, chunked (no Content-Length): refused after the cap
        yield b"x" * (1 << 20)
    yield b'"}'


BAD = [  # (method, path, keyword arguments, expected 4xx)
    ("GET", "/search", {"params": {"q": ""}}, 400),
    ("GET", "/search", {"params": {"q": "x" * 201}}, 400),
    ("GET", "/search", {"params": {"q": "bag", "k": 0}}, 422),
    ("GET", "/search", {"params": {"q": "bag", "k": "lots"}}, 422),
    ("POST", "/search", {"files": {"image": ("bomb.png", bomb_png(), "image/png")}}, 400),
    ("POST", "/search", {"files": {"image": ("a.gif", png_bytes(format="GIF"), "image/png")}}, 415),
    ("POST", "/search", {"content": b"x" * (LIMITS.request_bytes + 1), "headers": {"content-type": "image/png"}}, 413),
    ("POST", "/support", {"content": b'{"message": "where \\ud800 order"}',
                          "headers": {"content-type": "application/json"}}, 400),
    ("POST", "/support", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("POST", "/support", {"content": _oversized, "headers": {"content-type": "application/json"}}, 413),
    ("POST", "/support", {"json": {"message": "hi", "image": base64.b64encode(bomb_png()).decode()}}, 400),
    ("GET", "/recommend", {"params": {"user": "nobody"}}, 404),
    ("GET", "/recommend", {"params": {"user": " "}}, 400),
    ("GET", "/photo/unknown", {}, 404),
]
GOOD = [
    ("GET", "/search", {"params": {"q": "red bag", "k": 2}}),
    ("POST", "/search", {"files": {"image": ("red.png", png_bytes(), "image/png")}}),
    ("POST", "/support", {"json": {"message": "where is my order?"}}),
    ("GET", "/recommend", {"params": {"user": "u00001"}}),
    ("GET", "/photo/sku-red", {}),
    ("GET", "/health", {}),
]


def _client(base_url, seed, log):
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for step in range(REQUESTS_PER_CLIENT):
            bad = step % 2 == 0  # every bad request is followed by a good one
            method, path, kwargs, *expected = BAD[rng.integers(len(BAD))] if bad else GOOD[rng.integers(len(GOOD))]
            kwargs = {key: (value() if callable(value) else value) for key, value in kwargs.items()}
            start = time.perf_counter()
            try:
                response = client.request(method, path, **kwargs)
                status, detail = response.status_code, response.text
            except httpx.HTTPError as error:  # a dropped or refused connection
                status, detail = None, f"{error.__class__.__name__}: {error}"
            log.append({"bad": bad, "path": f"{method} {path}", "expected": expected[0] if bad else 200,
                        "status": status, "detail": detail[:200], "seconds": time.perf_counter() - start})


def test_mixed_load_with_bad_input(server):
    base_url, instance = server
    logs = [[] for _ in range(CLIENTS)]
    threads = [threading.Thread(target=_client, args=(base_url, seed, logs[seed])) for seed in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    seconds = time.perf_counter() - start
    rows = [row for log in logs for row in log]
    dropped = [row for row in rows if row["status"] is None]
    server_errors = [row for row in rows if row["status"] is not None and row["status"] >= 500]
    wrong = [row for row in rows if row["status"] != row["expected"]]
    latencies = np.array([row["seconds"] for row in rows]) * 1_000
    print(f"\nload: {len(rows)} requests from {CLIENTS} clients in {seconds:.1f} s; "
          f"{sum(row['bad'] for row in rows)} bad; 5xx {len(server_errors)}, dropped {len(dropped)}, "
          f"unexpected status {len(wrong)}; latency median {np.median(latencies):.1f} ms, "
          f"p95 {np.percentile(latencies, 95):.1f} ms")
    assert len(rows) == CLIENTS * REQUESTS_PER_CLIENT
    assert dropped == [] and server_errors == []
    assert wrong == [], wrong[:3]
    for log in logs:  # the server answered the good request right after each bad one
        assert all(after["status"] == 200 for before, after in zip(log, log[1:]) if before["bad"])
        assert all(json.loads(row["detail"])["detail"] for row in log if row["bad"])
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200
