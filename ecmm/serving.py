"""A FastAPI app that serves the shop's models: search, recommendations, customer service.

:func:`create_app` builds the app around four *backends*, each made lazily by a zero-argument
factory on the first request that needs it (so the server starts at once, and tests inject tiny
fakes):

- ``search``: an object with ``search_text(query, k)`` and ``search_image(image, k)`` returning a
  DataFrame or a list of dicts (:class:`ecmm.search.CatalogSearch` by default);
- ``recommend``: a callable ``(user_id, k) -> list of dicts``; unknown users raise ``ValueError``
  or ``KeyError``;
- ``support``: a callable ``(message, image or None) -> dict`` (intent, confidence, in_scope,
  answer, product);
- ``photo``: a callable ``sku_id -> uint8 (H, W, 3)``; unknown SKUs raise ``KeyError``.

Endpoints::

    GET  /                       HTML page: a search box and result thumbnails (honours /?q=...)
    GET  /search?q=TEXT&k=N      JSON list like `ecmm search --json` (optional &mode=dense|lexical|hybrid)
    POST /search?k=N             multipart upload "image" (or a raw image body): search by photo
    GET  /recommend?user=ID&k=N  JSON list like `ecmm recommend --json`
    POST /support                JSON {"message", optional "image" (base64)} or a multipart form
                                 with "message" and an optional "image" file
    GET  /photo/{sku_id}         PNG thumbnail
    GET  /health                 {"status": "ok" | "not ready", "loaded": [...], "not_ready": {...}}

Input is checked by :mod:`ecmm.validation` with the limits of :data:`ecmm.app.LIMITS`, exactly as
the ``ecmm`` command checks it. Request bodies are read by the app itself, chunk by chunk, and
refused with 413 as soon as they pass ``LIMITS.request_bytes`` (chunked or not). Errors are JSON
``{"detail": "..."}``: 4xx when the request is at fault (400 bad text or image, 404 unknown user or
SKU, 413 too large, 415 wrong format, 422 k out of range), 503 when the server is (a cached model
missing or damaged: the message names ``ecmm prepare --repair``), and never a bare 500. The
interactive API docs (``/docs``) are turned off: they would load their scripts from a CDN.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ecmm.app import LIMITS, Limits
from ecmm.artifacts import REPAIR_COMMAND, ArtifactError
from ecmm.serving_http import SECURITY_HEADERS, SecurityHeaders, error_text, read_body, read_form, read_upload
from ecmm.serving_page import PAGE_HTML
from ecmm.validation import (InputError, check_base64_image, check_image_bytes, check_k, check_message,
                             check_mode, check_query, check_user_id, image_format_names)

__all__ = ["Backends", "BackendError", "create_app", "default_backends", "PAGE_HTML", "SECURITY_HEADERS"]

LOGGER = logging.getLogger("ecmm.serving")


class BackendError(RuntimeError):
    """A backend could not be loaded: the server's fault (503)."""


class _Lazy:
    """A value built by ``factory()`` on first use, once, thread-safely; a failed build is retried."""

    def __init__(self, name: str, factory: Callable[[], Any] | None) -> None:
        self.name, self.factory = name, factory
        self._value: Any = None
        self._built = False
        self._lock = threading.Lock()
        self.error: str | None = None  # why the last build failed

    @property
    def loaded(self) -> bool:
        return self._built

    def get(self) -> Any:
        if not self._built:
            with self._lock:
                if not self._built:
                    if self.factory is None:
                        raise BackendError(f"this server has no {self.name} backend")
                    try:
                        self._value = self.factory()
                    except ArtifactError as error:
                        self.error = str(error)
                        raise
                    except Exception as error:
                        LOGGER.exception("loading the %s backend failed", self.name)
                        self.error = (f"the {self.name} backend failed to load ({error.__class__.__name__}: "
                                      f"{str(error)[:300]}); run `{REPAIR_COMMAND}`")
                        raise BackendError(self.error) from error
                    self._built, self.error = True, None
        return self._value


@dataclass
class Backends:
    """Zero-argument factories of the four backends (None = the endpoint answers 503)."""

    search: Callable[[], Any] | None = None  # -> object with search_text / search_image
    recommend: Callable[[], Callable[[str, int], list]] | None = None  # -> (user_id, k) -> records
    support: Callable[[], Callable[[str, Any], dict]] | None = None  # -> (message, image) -> dict
    photo: Callable[[], Callable[[str], np.ndarray]] | None = None  # -> sku_id -> uint8 (H, W, 3)
    health: Callable[[], dict[str, str]] | None = None  # -> {artefact: "ok" | "not built" | problem}
    lazy: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.lazy = {name: _Lazy(name, getattr(self, name)) for name in ("search", "recommend", "support", "photo")}


def _records(results: Any) -> list[dict]:
    """Search results (DataFrame or list of dicts) as JSON-ready dicts."""
    if hasattr(results, "to_dict"):
        from ecmm.search import results_to_records

        return results_to_records(results)
    return [dict(row) for row in results]


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def input_error(request: Request, error: InputError) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(ArtifactError)
    async def artifact_error(request: Request, error: ArtifactError) -> JSONResponse:
        LOGGER.error("cache fault: %s", error)
        return _error(503, str(error))

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, error: BackendError) -> JSONResponse:
        return _error(503, str(error))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in item.get('loc', ())[1:]) or 'request'}: {item.get('msg', 'invalid')}"
                 for item in error.errors()]
        return _error(422, "; ".join(parts) or "the request is invalid")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        LOGGER.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
        return _error(500, f"the server failed on this request ({error.__class__.__name__}); it is logged. "
                           f"Try again; if it persists, run `ecmm prepare --check`", SECURITY_HEADERS)


def create_app(backends: Backends | None = None, limits: Limits = LIMITS) -> FastAPI:
    """Build the FastAPI app.

    Args:
        backends: factories of the models; None uses :func:`default_backends` (the environment's catalog
            and model: ``ECMM_CATALOG`` / ``ECMM_PROFILE``, ``ECMM_MODEL``).
        limits: input limits (the command line's, :data:`ecmm.app.LIMITS`, by default).

    Returns:
        A ``fastapi.FastAPI`` app; serve it with uvicorn or call it with ``fastapi.testclient.TestClient``.
    """
    backends = backends if backends is not None else default_backends()
    app = FastAPI(title="ecmm shop", docs_url=None, redoc_url=None,
                  description="Search, recommendations and customer service of the ecmm shop. The interactive "
                              "docs are off (they load scripts from a CDN); the schema is at /openapi.json.")
    app.state.backends, app.state.limits = backends, limits
    app.add_middleware(SecurityHeaders)
    _install_error_handlers(app)

    def backend(name: str) -> Any:
        return backends.lazy[name].get()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE_HTML

    @app.get("/health")
    def health() -> JSONResponse:
        cache = dict(backends.health()) if backends.health is not None else {}
        not_ready = {name: status for name, status in cache.items() if status not in ("ok", "outdated", "not built")}
        not_ready.update({name: lazy.error for name, lazy in backends.lazy.items() if lazy.error})
        body = {"status": "not ready" if not_ready else "ok",
                "loaded": [name for name, lazy in backends.lazy.items() if lazy.loaded]}
        if cache:
            body["cache"] = cache
        if not_ready:
            body["not_ready"], body["repair"] = not_ready, REPAIR_COMMAND
        return JSONResponse(body, status_code=503 if not_ready else 200)

    @app.get("/search")
    def search_text(q: str | None = Query(None, description="text query"),
                    k: int = Query(10, description=f"number of results, 1..{limits.search_k}"),
                    mode: str | None = Query(None, description="dense, lexical or hybrid (default: the best)"),
                    ) -> list[dict]:
        query, k, mode = check_query(q, limits), check_k(k, limits.search_k), check_mode(mode)
        try:
            search = backend("search")
            return _records(search.search_text(query, k) if mode is None else search.search_text(query, k, mode=mode))
        except ValueError as error:
            raise InputError(error_text(error)) from None

    @app.post("/search")
    async def search_image(request: Request,
                           k: int = Query(10, description=f"number of results, 1..{limits.search_k}")) -> list[dict]:
        k = check_k(k, limits.search_k)
        content_type = request.headers.get("content-type", "").lower()
        body = await read_body(request, limits.request_bytes)
        if content_type.startswith("multipart/form-data"):
            form = await read_form(request, body)
            try:
                pixels = await read_upload(form.get("image"), limits)
            finally:
                await form.close()
        elif content_type.startswith("image/") or content_type.startswith("application/octet-stream"):
            pixels = await run_in_threadpool(check_image_bytes, body, limits)
        else:
            raise InputError(f'send a multipart form with a file field "image" ({image_format_names(limits)})',
                             status=415)
        try:
            return _records(await run_in_threadpool(backend("search").search_image, pixels, k))
        except ValueError as error:
            raise InputError(error_text(error)) from None

    @app.get("/recommend")
    def recommend(user: str | None = Query(None, description="user id, e.g. u00042"),
                  k: int = Query(10, description=f"number of products, 1..{limits.recommend_k}")) -> list[dict]:
        user_id, k = check_user_id(user, limits), check_k(k, limits.recommend_k)
        try:
            return [dict(row) for row in backend("recommend")(user_id, k)]
        except (KeyError, ValueError) as error:
            raise InputError(error_text(error), status=404) from None

    @app.post("/support")
    async def support(request: Request) -> dict:
        content_type = request.headers.get("content-type", "").lower()
        if not content_type.startswith(("application/json", "multipart/form-data")):
            raise InputError('send JSON {"message": ...} or a multipart form with a message field and an '
                             "optional image file", status=415)
        body = await read_body(request, limits.request_bytes)
        image = None
        if content_type.startswith("application/json"):
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                raise InputError('the body is not valid JSON: send {"message": "..."}') from None
            if not isinstance(payload, dict):
                raise InputError('send a JSON object: {"message": "..."}')
            message = payload.get("message")
            if payload.get("image") is not None:  # optional base64-encoded photo
                image = await run_in_threadpool(check_base64_image, payload["image"], limits)
        else:
            form = await read_form(request, body)
            try:
                message = form.get("message")
                if form.get("image") is not None:
                    image = await read_upload(form.get("image"), limits)
            finally:
                await form.close()
        if message is not None and not isinstance(message, str):
            raise InputError("message must be a string")
        text = check_message(message, limits)
        try:
            return dict(await run_in_threadpool(backend("support"), text, image))
        except ValueError as error:
            raise InputError(error_text(error)) from None

    @app.get("/photo/{sku_id}")
    def photo(sku_id: str) -> Response:
        try:
            if len(sku_id) > limits.sku_id_characters:
                raise KeyError(sku_id)
            pixels = backend("photo")(sku_id)
        except (KeyError, ValueError, IndexError):
            raise InputError(f"unknown SKU {sku_id[:limits.sku_id_characters]!r}", status=404) from None
        return Response(_png(pixels), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    return app


def default_backends(device: Any = None, *, source: Any = None, model: str | None = None) -> Backends:
    """The shop's backends (from :mod:`ecmm.app`): search, recommender, support assistant, photos.

    Each is loaded on the first request that needs it (built and cached the first time, like the
    ``ecmm search`` / ``recommend`` / ``support`` commands). Photos are read from the catalog
    source on request (``source.photos()[row, 0]``), never held as one array. ``/health`` looks
    at the cache's cards.

    Args:
        device: where the models run; None picks the best available.
        source: the catalog (None: ``open_catalog()``, i.e. ``ECMM_CATALOG`` / ``ECMM_PROFILE``).
        model: the model spec (None: ``model_spec()``, i.e. ``ECMM_MODEL``).
    """
    from ecmm import app as wiring

    shared: dict[str, Any] = {}
    lock = threading.Lock()

    def shop_source() -> Any:
        with lock:
            if "source" not in shared:
                if source is not None:
                    shared["source"] = source
                else:
                    from ecmm.assets import active_shop

                    shared["source"] = active_shop().source
        return shared["source"]

    def search() -> Any:
        catalog = shop_source()
        with lock:
            if "search" not in shared:
                from ecmm.serving_http import BatchedSearch

                shared["search"] = BatchedSearch(wiring.load_search(device=device, progress=False, source=catalog,
                                                                    model=model))  # concurrent queries share a batch
        return shared["search"]

    def recommend() -> Callable[[str, int], list]:
        return wiring.load_recommender(source=shop_source(), model=model)  # callable (user_id, k); .user_ids

    def support() -> Callable[[str, Any], dict]:
        assistant = wiring.load_support(device=device, progress=False, search_loader=search, source=shop_source(),
                                        model=model)
        return lambda message, image: wiring.reply_record(assistant.reply(message, image=image))

    def photo() -> Callable[[str], np.ndarray]:
        catalog = shop_source()
        photos = catalog.photos()  # lazy: one SKU's photos are decoded per request
        rows = {sku: row for row, sku in enumerate(catalog.table()["sku_id"].astype(str))}
        return lambda sku_id: photos[rows[sku_id], 0]

    return Backends(search=search, recommend=recommend, support=support, photo=photo, health=wiring.check_cache)
