"""HTTP plumbing of :mod:`ecmm.serving`: bounded body reading, multipart forms, security headers,
micro-batching of text searches.

:func:`read_body` reads a request body chunk by chunk from ``request.stream()`` and stops with 413
at the first chunk past the limit, chunked or not; :func:`read_form` parses a multipart form from
that capped body; :class:`SecurityHeaders` adds :data:`SECURITY_HEADERS` to every response (a
Content-Security-Policy that allows the page's own inline script and style by their sha256).
:class:`BatchedSearch` answers the text queries of concurrent requests with one encoder call per
model (micro-batching): throughput grows with the clients while a lone request waits for nothing.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import Counter
from typing import Any, Callable

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ecmm.app import LIMITS, Limits
from ecmm.serving_page import PAGE_SCRIPT, PAGE_STYLE
from ecmm.validation import InputError, check_image_bytes, image_format_names

__all__ = ["SECURITY_HEADERS", "SecurityHeaders", "csp_hash", "read_body", "read_form", "read_upload", "error_text",
           "BatchedSearch", "MAX_BATCH", "MAX_WAIT_SECONDS"]

MAX_BATCH = 16  # text queries answered by one encoder call at most
MAX_WAIT_SECONDS = 0.002  # how long a batch waits for more queries, only while requests arrive concurrently


def error_text(error: BaseException) -> str:
    """The text of a ValueError or KeyError (KeyError's str() adds quotes; args[0] has none)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)


def csp_hash(text: str) -> str:
    """A CSP source that allows exactly this inline block: ``'sha256-<base64>'``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


SECURITY_HEADERS = {  # sent with every response
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (f"default-src 'none'; script-src {csp_hash(PAGE_SCRIPT)}; "
                                f"style-src {csp_hash(PAGE_STYLE)}; img-src 'self'; connect-src 'self'; "
                                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
}


class SecurityHeaders:
    """ASGI middleware that adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [(key.lower().encode(), value.encode()) for key, value in SECURITY_HEADERS.items()]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + self.headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk; 413 as soon as it passes ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
    body is refused at the first chunk that passes it, so the rest is never read.
    """
    too_large = InputError(f"the request is larger than {limit} bytes; send at most {limit} "
                           f"(an image of at most {LIMITS.image_bytes} bytes)", status=413)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InputError("the Content-Length header is not a number")
        if int(declared) > limit:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, body: bytes) -> Any:
    """Parse a multipart form from an already read (and capped) body."""
    from starlette.formparsers import MultiPartException

    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, receive).form(max_files=2, max_fields=8)
    except (MultiPartException, ValueError, KeyError) as error:
        raise InputError(f"the multipart form is malformed ({error_text(error)[:120]})") from None


async def read_upload(upload: Any, limits: Limits) -> np.ndarray:
    """An uploaded file (from a form) -> uint8 ``(H, W, 3)``, checked like every image."""
    if upload is None or isinstance(upload, str):
        raise InputError(f'attach the photo as a file field named "image" ({image_format_names(limits)})')
    content_type = (getattr(upload, "content_type", None) or "").lower()
    if content_type and not content_type.startswith("image/") and content_type != "application/octet-stream":
        raise InputError(f"upload an image ({image_format_names(limits)}), not {content_type}", status=415)
    payload = await upload.read(limits.image_bytes + 1)
    return await run_in_threadpool(check_image_bytes, payload, limits)


class _Pending:
    """One queued text query and, once answered, its records or its error."""

    def __init__(self, query: str, k: int, mode: str | None) -> None:
        self.query, self.k, self.mode = query, k, mode
        self.done = threading.Event()
        self.records: list[dict] | None = None
        self.error: BaseException | None = None


class BatchedSearch:
    """A catalog search whose concurrent text queries are answered together (micro-batching).

    Every caller of :meth:`search_text` (one per request thread) queues its query and waits; one
    worker thread takes what is queued (at most ``max_batch``) and answers it with one
    ``search.search_records(queries, ks, modes)`` call, i.e. one encoder call per model for the
    whole batch. While the encoders run, the next requests queue, so batches grow with the load
    by themselves. When the previous batch held several queries (clients are concurrent), the
    worker also waits up to ``max_wait`` seconds for as many again; a lone client never waits.
    A query that fails (empty, too long) fails alone: the batch is answered query by query then.

    Args:
        search: an object with ``search_records`` (:class:`ecmm.search.CatalogSearch`), or
            only ``search_text(query, k[, mode])`` (then answered one by one, as records).
        max_batch: queries per batch at most.
        max_wait: seconds a batch waits for more queries (0 = never).

    Other attributes (``search_image``, ``understand``, ``catalog``, ...) are the search's own.
    """

    def __init__(self, search: Any, max_batch: int = MAX_BATCH, max_wait: float = MAX_WAIT_SECONDS) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait >= 0; got {max_batch}, {max_wait}")
        self.search, self.max_batch, self.max_wait = search, max_batch, max_wait
        self.batch_sizes: Counter[int] = Counter()  # batch size -> how many batches had it
        self._queue: list[_Pending] = []
        self._condition = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._last_batch = 1

    def __getattr__(self, name: str) -> Any:
        if name == "search":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.search, name)

    def search_text(self, query: str, k: int = 10, mode: str | None = None) -> list[dict]:
        """Top-``k`` results of ``query`` as JSON-ready dicts, answered in a batch with concurrent queries.

        Raises:
            ValueError: what the search raises for this query (empty, too long, unknown mode).
        """
        pending = _Pending(query, k, mode)
        with self._condition:
            if self._closed:
                raise RuntimeError("this BatchedSearch is closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="ecmm-search-batches", daemon=True)
                self._worker.start()
            self._queue.append(pending)
            self._condition.notify_all()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.records

    def close(self) -> None:
        """Stop the worker thread once the queued queries are answered."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10)

    def _next_batch(self) -> list[_Pending]:
        with self._condition:
            while not self._queue and not self._closed:
                self._condition.wait()
            wanted = min(self._last_batch, self.max_batch)
            deadline = time.monotonic() + self.max_wait
            while self._queue and len(self._queue) < wanted and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch = self._queue[:self.max_batch]
            del self._queue[:self.max_batch]
            self._last_batch = max(len(batch), 1)
            return batch

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return  # closed and nothing left
            self.batch_sizes[len(batch)] += 1
            try:
                for pending, records in zip(batch, self._answer(batch)):
                    pending.records = records
            except Exception:  # noqa: BLE001 - one bad query must not fail the others: answer them one by one
                for pending in batch:
                    try:
                        pending.records = self._answer([pending])[0]
                    except Exception as error:  # noqa: BLE001 - handed to the request that sent it
                        pending.error = error
            for pending in batch:
                pending.done.set()

    def _answer(self, batch: list[_Pending]) -> list[list[dict]]:
        if hasattr(self.search, "search_records"):
            return self.search.search_records([request.query for request in batch], [request.k for request in batch],
                                              [request.mode for request in batch])
        from ecmm.search import results_to_records

        answers = []
        for request in batch:
            results = self.search.search_text(request.query, request.k) if request.mode is None else \
                self.search.search_text(request.query, request.k, mode=request.mode)
            answers.append(results_to_records(results) if hasattr(results, "to_dict") else [dict(row) for row in results])
        return answers
