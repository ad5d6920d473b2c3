"""``python -m ecmm.bench serve [--requests 100] [--clients 1 2 4] [--json PATH]``: the web server under load.

Starts ``ecmm serve`` (uvicorn) on a free port of 127.0.0.1 in a subprocess, waits for ``/health``,
loads the backends with one request each, then sends a bounded mixed load (mostly ``/search`` text
queries, some ``/recommend``, a few ``/support``) from 1, 2 and 4 client threads and prints the
median and 95th-percentile latency and requests/s per level. In this process it then measures the
query encoder alone (the CLIP text tower's ``encode_text`` of the same queries, one at a time,
requests/s; also both encoders a hybrid query needs, one and four at a time) and one search's
parts (parse, tokenise, encode, rank, serialise), so the ratio server throughput / encoder-only
throughput is visible. It stops the server itself. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

__all__ = ["LevelStats", "percentile", "summarise", "mixed_requests", "free_port", "run_level",
           "encoder_throughput", "encoder_rates", "search_breakdown", "int8_report", "add_parser", "run"]

QUERIES: tuple[str, ...] = ("red backpack", "blue running shoes", "black leather wallet", "green t-shirt",
                            "white sneakers", "brown boots", "yellow dress", "grey hoodie", "pink handbag",
                            "silver watch", "cheap laptop", "wooden chair", "purple scarf", "orange mug")
PURPOSES: tuple[str, ...] = ("", " for men", " for women", " for kids", " for work", " for travel", " for summer",
                             " for winter", " as a gift", " on sale")
QUERY_SET: tuple[str, ...] = tuple(query + purpose for purpose in PURPOSES for query in QUERIES)  # 140 distinct
# Every query of a run is distinct from the last 139: a model that memoises recent texts (the offline
# model keeps its last 64 MiniLM outputs) is measured doing the work, not looking it up.
USERS: tuple[str, ...] = ("u00001", "u00007", "u00042")
MESSAGES: tuple[str, ...] = ("where is my order EC123456?", "how do I return a jacket?")


@dataclass(frozen=True)
class LevelStats:
    """Latency and throughput of one load level."""

    clients: int  # client threads sending at once
    requests: int  # requests answered (any status)
    errors: int  # requests answered with 5xx or not answered
    p50_ms: float  # median latency, milliseconds
    p95_ms: float  # 95th-percentile latency, milliseconds
    requests_per_second: float  # answered requests / wall seconds of the level


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (linear interpolation between order statistics).

    Raises:
        ValueError: ``values`` is empty or ``fraction`` is outside [0, 1].
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(clients: int, latencies: Sequence[float], wall_seconds: float, errors: int = 0) -> LevelStats:
    """Statistics of one level from per-request latencies (seconds) and its wall time (seconds)."""
    if wall_seconds <= 0:
        raise ValueError(f"wall_seconds must be positive; got {wall_seconds}")
    return LevelStats(clients=clients, requests=len(latencies), errors=errors,
                      p50_ms=round(1000 * percentile(latencies, 0.5), 2),
                      p95_ms=round(1000 * percentile(latencies, 0.95), 2),
                      requests_per_second=round(len(latencies) / wall_seconds, 2))


def mixed_requests(count: int, start: int = 0) -> list[tuple[str, str, bytes | None]]:
    """``count`` requests ``(method, path, body)``: 16 of 20 text searches, 3 recommendations, 1 support.

    The searches cycle through :data:`QUERY_SET` from position ``start`` (the request's number).
    """
    requests = []
    for number in range(start, start + count):
        slot = number % 20
        if slot == 19:
            body = json.dumps({"message": MESSAGES[number % len(MESSAGES)]}).encode()
            requests.append(("POST", "/support", body))
        elif slot in (5, 11, 17):
            requests.append(("GET", f"/recommend?user={USERS[number % len(USERS)]}&k=10", None))
        else:
            requests.append(("GET", "/search?" + urllib.parse.urlencode({"q": QUERY_SET[number % len(QUERY_SET)]}), None))
    return requests


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


def _send(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None) -> int:
    headers = {"content-type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def run_level(port: int, clients: int, requests: Sequence[tuple[str, str, bytes | None]],
              time_limit: float = 60.0) -> LevelStats:
    """Send ``requests`` from ``clients`` threads (keep-alive connections), stopping at ``time_limit`` s."""
    pending = list(reversed(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + time_limit

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                if not pending:
                    break
                method, path, body = pending.pop()
            start = time.perf_counter()
            try:
                status = _send(connection, method, path, body)
            except (OSError, http.client.HTTPException):
                status = 599
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors[0] += status >= 500
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarise(clients, latencies or [0.0], time.perf_counter() - start, errors[0])


def encoder_throughput(encode: Callable[[str], object], queries: Sequence[str], repeats: int = 3) -> float:
    """Queries per second of ``encode(query)`` called one query at a time (after one warm-up call)."""
    encode(queries[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for query in queries:
            encode(query)
    return round(repeats * len(queries) / (time.perf_counter() - start), 2)


def _wait_for_health(port: int, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode} before answering /health")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            _send(connection, "GET", "/health", None)
            connection.close()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")


def _median_ms(values: Sequence[float]) -> float:
    return round(1000 * statistics.median(values), 2)


def search_breakdown(search: object, queries: Sequence[str]) -> dict[str, float]:
    """Median milliseconds of one hybrid text search's parts, in this process (no memoised encoding).

    Args:
        search: a :class:`ecmm.search.CatalogSearch` (its text side already loaded).
        queries: the text queries, each timed once per part.

    Returns:
        ``{"parse" (parse_query), "tokenise" (CLIP tokenizer), "encode_clip" (CLIP text tower),
        "encode_sentence" (the text->text encoder, tokenising included), "encode_queries" (parse +
        both encoders, as a search does it), "rank" (signals, fusion, top-k), "search_text" (the
        whole call, DataFrame out), "search_records" (the whole call, JSON-ready dicts out),
        "serialise" (json.dumps of the records)}``.
    """
    from ecmm.query import parse_query

    parts: dict[str, list[float]] = {name: [] for name in (
        "parse", "tokenise", "encode_clip", "encode_sentence", "encode_queries", "rank", "search_text",
        "search_records", "serialise")}

    memo = getattr(getattr(search, "model", None), "text_feature_cache", None)  # the offline model's MiniLM memo
    forget = getattr(search.query_encoders, "forget", None)  # the exported encoders' last pass
    encode_clip = query_clip_encoder(search)

    def timed(name: str, function: Callable[[], object]) -> object:
        if isinstance(memo, dict):
            memo.clear()  # every part pays for its own MiniLM passes
        if callable(forget):
            forget()
        start = time.perf_counter()
        value = function()
        parts[name].append(time.perf_counter() - start)
        return value

    search.search_text(queries[0])  # warm-up
    for query in queries:
        timed("parse", lambda: parse_query(query, search.vocabulary))
        timed("tokenise", lambda: search.tokenizer([query]))
        timed("encode_clip", lambda: encode_clip([query]))
        timed("encode_sentence", lambda: search.encode_texts([query]))
        encoded = timed("encode_queries", lambda: search.encode_queries([query]))[0]
        timed("rank", lambda: search.scores(encoded))
        timed("search_text", lambda: search.search_text(query, 10))
        records = timed("search_records", lambda: search.search_records([query], 10))[0]
        timed("serialise", lambda: json.dumps(records))
    return {name: _median_ms(values) for name, values in parts.items()}


def query_clip_encoder(search: object) -> Callable[[list[str]], object]:
    """The CLIP text tower as the search runs a query: its exported copy when it has one, else the
    torch model (tokenising included). Shapes: ``B`` texts -> ``(B, E)``."""
    exported = getattr(search, "query_encoders", {})
    if "clip" in exported:
        return exported["clip"]
    import torch

    def torch_tower(texts: list[str]) -> object:
        with torch.no_grad():
            return search.model.encode_text(search.tokenizer(texts))

    return torch_tower


def encoder_rates(search: object, queries: Sequence[str], batch: int = 4) -> dict[str, float]:
    """Queries per second of the query encoders alone, each rate on its own slice of ``queries``.

    Args:
        search: a :class:`ecmm.search.CatalogSearch`.
        queries: distinct queries (at least 3 slices of ``batch``); the rates use disjoint thirds.
        batch: queries per call for the batched rate.

    Returns:
        ``{"clip" (CLIP text tower as the search runs it: the exported one when it has it, tokenising
        included, one query a call: the "encoder only" of the ratio), "clip_and_sentence" (both
        encoders a hybrid query needs, one query a call),
        "clip_and_sentence_batched" (both, ``batch`` queries a call), "clip_repeated" (the CLIP tower on
        the first ``len(queries) // 10`` queries three times: what a model that memoises recent texts
        answers for repeated queries)}``.
    """
    third = len(queries) // 3
    forget = getattr(search.query_encoders, "forget", None)  # exported encoders keep the last texts' pass

    def clip(texts: list[str]) -> object:
        if callable(forget):
            forget()
        return query_clip_encoder(search)(texts)

    def both(texts: list[str]) -> object:
        clip(texts)
        return search.encode_texts(texts)

    singles = [[query] for query in queries]
    groups = [list(queries[start:start + batch]) for start in range(2 * third, 3 * third - batch + 1, batch)]
    repeated = singles[:max(1, len(queries) // 10)]
    return {"clip": encoder_throughput(clip, singles[:third], repeats=1),
            "clip_and_sentence": encoder_throughput(both, singles[third:2 * third], repeats=1),
            "clip_and_sentence_batched": round(encoder_throughput(both, groups, repeats=1) * batch, 2),
            "clip_repeated": encoder_throughput(query_clip_encoder(search), repeated, repeats=3)}


def int8_report(search: object, queries: Sequence[str]) -> dict[str, float]:
    """What int8 query encoders (:func:`ecmm.export_search.int8_query_search`) gain and cost.

    Returns:
        ``{"fp32_ms", "int8_ms" (median ms of one hybrid search_records), "fp32_MRR", "int8_MRR",
        "fp32_R@10", "int8_R@10" (hybrid, the free-form query set), "same_top10" (share of ``queries``
        whose top-10 SKUs are unchanged, in order), "top10_overlap" (mean share of a top 10 kept)}``.
    """
    from ecmm.export_search import int8_query_search
    from ecmm.hybrid import evaluate_queries
    from ecmm.query import load_query_set

    quick = int8_query_search(search)
    report: dict[str, float] = {}
    labelled = load_query_set("freeform")
    for name, variant in (("fp32", search), ("int8", quick)):
        memo = getattr(variant.model, "text_feature_cache", None)
        times = []
        for query in queries:
            if isinstance(memo, dict):
                memo.clear()
            start = time.perf_counter()
            variant.search_records([query], 10)
            times.append(time.perf_counter() - start)
        report[f"{name}_ms"] = _median_ms(times)
        table = evaluate_queries(variant, labelled, modes=("hybrid",))
        overall = table[table["kind"] == "all"].iloc[0]
        report[f"{name}_MRR"], report[f"{name}_R@10"] = round(float(overall["MRR"]), 4), round(float(overall["R@10"]), 4)
    pairs = [([row["sku_id"] for row in a], [row["sku_id"] for row in b])
             for a, b in zip(search.search_records(queries, 10), quick.search_records(queries, 10))]
    report["same_top10"] = round(sum(a == b for a, b in pairs) / len(pairs), 3)
    report["top10_overlap"] = round(sum(len(set(a) & set(b)) / len(a) for a, b in pairs) / len(pairs), 3)
    return report


def add_parser(subparsers) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser("serve", help="latency and throughput of `ecmm serve` under a mixed load")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--requests", type=int, default=100, help="requests per load level (default 100)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4], help="client threads per level")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds at most per level (default 60)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for the server")
    parser.add_argument("--int8", action="store_true",
                        help="also time int8 query encoders in process and print the recall they cost")


def run(args: argparse.Namespace) -> int:
    """Start the server, load it, measure the encoder, print the table, optionally write JSON."""
    if args.requests < 1 or min(args.clients) < 1:
        raise ValueError("--requests and --clients must be positive")
    port = free_port()
    command = [sys.executable, "-m", "ecmm.cli", "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        started = time.perf_counter()
        _wait_for_health(port, server, args.startup_timeout)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        run_level(port, 1, mixed_requests(20), time_limit=args.startup_timeout)  # loads every backend
        first_load = time.perf_counter() - started
        levels: dict[str, list[LevelStats]] = {"mixed": [], "search": []}
        position = 20  # where the next level's queries start in QUERY_SET
        for clients in args.clients:
            levels["mixed"].append(run_level(port, clients, mixed_requests(args.requests, position), args.time_limit))
            position += args.requests
        for clients in args.clients:
            searches = [request for request in mixed_requests(args.requests * 2, position)
                        if request[1].startswith("/search")][:args.requests]
            levels["search"].append(run_level(port, clients, searches, args.time_limit))
            position += args.requests * 2
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(f"server: up in {startup:.1f} s, backends loaded in {first_load:.1f} s")
    print(f"{'load':>7} {'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
    for kind, stats in levels.items():
        for level in stats:
            print(f"{kind:>7} {level.clients:>7} {level.requests:>8} {level.errors:>6} {level.p50_ms:>8.1f} "
                  f"{level.p95_ms:>8.1f} {level.requests_per_second:>8.1f}")
    from ecmm.app import load_search

    started = time.perf_counter()
    search = load_search(progress=False)
    search.text_side()
    in_process_load = time.perf_counter() - started
    rates = encoder_rates(search, QUERY_SET)
    encoder = rates["clip"]
    breakdown = search_breakdown(search, QUERY_SET[:28])
    top = max(args.clients)
    served = next(level for level in levels["search"] if level.clients == top).requests_per_second
    print(f"load_search in this process: {in_process_load:.1f} s (index, text side, both encoders)")
    kind = "exported" if "clip" in search.query_encoders else "torch"
    print(f"encoder only (CLIP text tower, {kind}, 1 query a call): {encoder:.1f} queries/s; /search at {top} clients / "
          f"encoder only = {served / encoder:.2f}")
    print(f"both query encoders of a hybrid search ({kind}): {rates['clip_and_sentence']:.1f} queries/s one at a time, "
          f"{rates['clip_and_sentence_batched']:.1f} queries/s 4 at a time; the CLIP tower on repeated queries "
          f"(memoised texts): {rates['clip_repeated']:.1f} queries/s")
    single = levels["search"][0].p50_ms if levels["search"][0].clients == 1 else float("nan")
    inside = breakdown["search_records"] + breakdown["serialise"]
    print("one search in process (median ms): " + ", ".join(f"{name} {value:.1f}" for name, value in breakdown.items())
          + f"; framework and HTTP (1-client /search p50 minus search_records and serialise) {single - inside:.1f}")
    int8 = int8_report(search, QUERY_SET[:40]) if getattr(args, "int8", False) else None
    if int8 is not None:
        print(f"int8 query encoders: hybrid search {int8['fp32_ms']:.1f} -> {int8['int8_ms']:.1f} ms; free-form MRR "
              f"{int8['fp32_MRR']:.3f} -> {int8['int8_MRR']:.3f}, R@10 {int8['fp32_R@10']:.3f} -> {int8['int8_R@10']:.3f}; "
              f"top-10 unchanged for {100 * int8['same_top10']:.0f}% of 40 queries, "
              f"{100 * int8['top10_overlap']:.0f}% of a top 10 kept on average")
    results = {"levels": {kind: [asdict(level) for level in stats] for kind, stats in levels.items()},
               "encoder_queries_per_second": encoder, "ratio": round(served / encoder, 3),
               "encoder_rates": rates, "load_search_seconds": round(in_process_load, 2),
               "breakdown_ms": breakdown, "int8": int8, "startup_seconds": round(startup, 2),
               "first_load_seconds": round(first_load, 2), "requests_per_level": args.requests}
    if args.json:
        from ecmm.bench import write_results

        write_results(args.json, results)
    return 0
