"""HTTP plumbing of :mod:`ecmm.serving`: bounded body reading, multipart forms, security headers.

:func:`read_body` reads a request body chunk by chunk from ``request.stream()`` and stops with 413
at the first chunk past the limit, chunked or not; :func:`read_form` parses a multipart form from
that capped body; :class:`SecurityHeaders` adds :data:`SECURITY_HEADERS` to every response (a
Content-Security-Policy that allows the page's own inline script and style by their sha256).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Callable

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ecmm.app import LIMITS, Limits
from ecmm.serving_page import PAGE_SCRIPT, PAGE_STYLE
from ecmm.validation import InputError, check_image_bytes, image_format_names

__all__ = ["SECURITY_HEADERS", "SecurityHeaders", "csp_hash", "read_body", "read_form", "read_upload", "error_text"]


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
