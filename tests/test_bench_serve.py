"""The serving benchmark's statistics on hand-made numbers, and one load level against a stub server."""

import socket
import threading
import time

import pytest

from ecmm.bench.serve import encoder_throughput, mixed_requests, percentile, run_level, summarise


def test_percentile_interpolates_between_order_statistics():
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 5.0
    assert percentile(values, 0.95) == pytest.approx(4.8)  # 4 + 0.8 * (5 - 4)
    assert percentile([2.0, 4.0], 0.5) == 3.0


def test_percentile_refuses_nothing_and_bad_fractions():
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_summarise_reports_milliseconds_and_rate():
    stats = summarise(2, [0.010, 0.020, 0.030, 0.040], wall_seconds=0.05, errors=1)
    assert (stats.clients, stats.requests, stats.errors) == (2, 4, 1)
    assert stats.p50_ms == 25.0
    assert stats.p95_ms == pytest.approx(38.5)  # 30 + 0.85 * 10
    assert stats.requests_per_second == 80.0  # 4 requests / 0.05 s
    with pytest.raises(ValueError):
        summarise(1, [0.1], wall_seconds=0.0)


def test_mixed_requests_are_mostly_searches():
    from ecmm.bench.serve import QUERY_SET

    assert len(set(QUERY_SET)) == len(QUERY_SET) == 140
    later = [path for _, path, _ in mixed_requests(20, start=140) if path.startswith("/search")]
    assert later == [path for _, path, _ in mixed_requests(20) if path.startswith("/search")]  # the set cycles
    requests = mixed_requests(100)
    paths = [path.split("?")[0] for _, path, _ in requests]
    assert len(requests) == 100
    assert (paths.count("/search"), paths.count("/recommend"), paths.count("/support")) == (80, 15, 5)
    assert all(body is not None for method, _, body in requests if method == "POST")


def test_encoder_throughput_counts_calls():
    calls = []
    rate = encoder_throughput(calls.append, ["a", "b"], repeats=2)
    assert len(calls) == 5 and rate > 0  # one warm-up + 2 x 2


def test_run_level_against_a_stub_server():
    uvicorn = pytest.importorskip("uvicorn")
    from ecmm.serving import Backends, create_app
    from test_serving import FakeSearch, fake_photo, fake_recommend, fake_support

    backends = Backends(search=lambda: FakeSearch(), recommend=lambda: fake_recommend,
                        support=lambda: fake_support, photo=lambda: fake_photo)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(backends), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        stats = run_level(port, 2, mixed_requests(40), time_limit=10)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
    assert stats.requests == 40 and stats.errors == 0
    assert 0 < stats.p50_ms <= stats.p95_ms


def test_breakdown_and_encoder_rates_of_a_tiny_search():
    from test_search import CATALOG, FakeClip, photos

    from ecmm.bench.serve import encoder_rates, search_breakdown
    from ecmm.search import CatalogSearch

    model = FakeClip()
    search = CatalogSearch.build(model, model.preprocess, model.tokenizer, CATALOG, photos(), device="cpu")
    parts = search_breakdown(search, ["red necktie", "blue backpack"])
    assert set(parts) == {"parse", "tokenise", "encode_clip", "encode_sentence", "encode_queries", "rank",
                          "search_text", "search_records", "serialise"}
    assert all(value >= 0 for value in parts.values())
    rates = encoder_rates(search, ["red", "blue", "scarf", "neck", "red scarf", "blue neck"], batch=2)
    assert set(rates) == {"clip", "clip_and_sentence", "clip_and_sentence_batched", "clip_repeated"}
    assert min(rates.values()) > 0
