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
    GET  /search?q=TEXT&k=N      JSON list like `ecmm search --json`
    POST /search?k=N             multipart upload "image": search by photo
    GET  /recommend?user=ID&k=N  JSON list like `ecmm recommend --json`
    POST /support                JSON {"message", optional "image" (base64)} or a multipart form
                                 with "message" and an optional "image" file
    GET  /photo/{sku_id}         PNG thumbnail
    GET  /health                 {"status": "ok", "loaded": [...]}

Bad input gets a 4xx with a JSON ``detail``: 400 (empty or over-long text, unreadable image),
404 (unknown SKU or user), 413 (upload too large), 415 (wrong content type), 422 (k out of range).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

__all__ = ["ServingLimits", "Backends", "create_app", "default_backends", "PAGE_HTML"]


@dataclass(frozen=True)
class ServingLimits:
    """Request limits of the app."""

    max_query_characters: int = 200  # longer text queries are refused (as in ecmm search)
    max_message_characters: int = 1_000  # longer support messages are refused
    max_upload_bytes: int = 2_000_000  # larger image uploads get 413
    max_image_side: int = 4_096  # larger images (in pixels) are refused
    max_k: int = 100  # largest number of results

    def __post_init__(self) -> None:
        if min(self.max_query_characters, self.max_message_characters, self.max_upload_bytes, self.max_k) < 1:
            raise ValueError("every limit must be a positive number")


class _Lazy:
    """A value built by ``factory()`` on first use, once, thread-safely."""

    def __init__(self, name: str, factory: Callable[[], Any] | None) -> None:
        self.name, self.factory = name, factory
        self._value: Any = None
        self._built = False
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._built

    def get(self) -> Any:
        if not self._built:
            with self._lock:
                if not self._built:
                    if self.factory is None:
                        raise LookupError(f"this server has no {self.name} backend")
                    self._value = self.factory()
                    self._built = True
        return self._value


@dataclass
class Backends:
    """Zero-argument factories of the four backends (None = endpoint answers 503)."""

    search: Callable[[], Any] | None = None  # -> object with search_text / search_image
    recommend: Callable[[], Callable[[str, int], list]] | None = None  # -> (user_id, k) -> records
    support: Callable[[], Callable[[str, Any], dict]] | None = None  # -> (message, image) -> dict
    photo: Callable[[], Callable[[str], np.ndarray]] | None = None  # -> sku_id -> uint8 (H, W, 3)
    lazy: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.lazy = {name: _Lazy(name, getattr(self, name)) for name in ("search", "recommend", "support", "photo")}


def _records(results: Any) -> list[dict]:
    """Search results (DataFrame or list of dicts) as JSON-ready dicts."""
    if hasattr(results, "to_dict"):
        from ecmm.search import results_to_records

        return results_to_records(results)
    return [dict(row) for row in results]


def _decode_image(payload: bytes, limits: ServingLimits) -> np.ndarray:
    """Bytes of a PNG/JPEG upload -> uint8 ``(H, W, 3)``; ValueError if unreadable or too big."""
    from PIL import Image, UnidentifiedImageError

    if not payload:
        raise ValueError("the uploaded image is empty: attach a PNG or JPEG file")
    try:
        with Image.open(io.BytesIO(payload)) as image:
            if max(image.size) > limits.max_image_side:
                raise ValueError(f"the image is {image.size[0]}x{image.size[1]} pixels; "
                                 f"keep each side under {limits.max_image_side}")
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError):
        raise ValueError("the upload is not a readable PNG or JPEG image") from None


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def create_app(backends: Backends | None = None, limits: ServingLimits = ServingLimits()) -> FastAPI:
    """Build the FastAPI app.

    Args:
        backends: factories of the models; None uses :func:`default_backends` (the offline shop).
        limits: request limits.

    Returns:
        A ``fastapi.FastAPI`` app; serve it with uvicorn or call it with ``fastapi.testclient.TestClient``.
    """
    backends = backends if backends is not None else default_backends()
    app = FastAPI(title="ecmm shop", description="Search, recommendations and customer service of the ecmm shop.")
    app.state.backends, app.state.limits = backends, limits

    def backend(name: str) -> Any:
        try:
            return backends.lazy[name].get()
        except LookupError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None

    def check_text(text: str | None, what: str, limit: int) -> str:
        text = (text or "").strip()
        if not text:
            raise HTTPException(status_code=400, detail=f"the {what} is empty: type what you are looking for")
        if len(text) > limit:
            raise HTTPException(status_code=400, detail=f"the {what} has {len(text)} characters; keep it under {limit}")
        return text

    def read_upload(upload: Any) -> np.ndarray:
        content_type = (getattr(upload, "content_type", None) or "").lower()
        if content_type and not content_type.startswith("image/") and content_type != "application/octet-stream":
            raise HTTPException(status_code=415, detail=f"upload an image (PNG or JPEG), not {content_type}")
        payload = upload.file.read(limits.max_upload_bytes + 1)
        if len(payload) > limits.max_upload_bytes:
            raise HTTPException(status_code=413, detail=f"the image is larger than {limits.max_upload_bytes} bytes; "
                                                        "send a smaller photo")
        try:
            return _decode_image(payload, limits)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    def decode_base64_image(encoded: Any) -> np.ndarray:
        import base64
        import binascii

        if not isinstance(encoded, str):
            raise HTTPException(status_code=400, detail="image must be a base64 string of a PNG or JPEG file")
        if len(encoded) > limits.max_upload_bytes * 4 // 3 + 4:
            raise HTTPException(status_code=413, detail=f"the image is larger than {limits.max_upload_bytes} bytes; "
                                                        "send a smaller photo")
        try:
            payload = base64.b64decode(encoded, validate=True)
            return _decode_image(payload, limits)
        except (ValueError, binascii.Error) as error:
            raise HTTPException(status_code=400, detail=f"image: {error}") from None

    k_query = Query(10, ge=1, le=limits.max_k, description="number of results")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE_HTML

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "loaded": [name for name, lazy in backends.lazy.items() if lazy.loaded]}

    @app.get("/search")
    def search_text(q: str | None = Query(None, description="text query"), k: int = k_query) -> list[dict]:
        query = check_text(q, "query", limits.max_query_characters)
        try:
            return _records(backend("search").search_text(query, k))
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    @app.post("/search")
    def search_image(image: UploadFile, k: int = k_query) -> list[dict]:
        pixels = read_upload(image)
        try:
            return _records(backend("search").search_image(pixels, k))
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    @app.get("/recommend")
    def recommend(user: str | None = Query(None, description="user id, e.g. u00042"), k: int = k_query) -> list[dict]:
        user_id = check_text(user, "user id", 64)
        try:
            return [dict(row) for row in backend("recommend")(user_id, k)]
        except (KeyError, ValueError) as error:
            raise HTTPException(status_code=404, detail=str(error).strip("'\"")) from None

    @app.post("/support")
    async def support(request: Request) -> dict:
        content_type = request.headers.get("content-type", "").lower()
        declared = int(request.headers.get("content-length") or 0)
        if declared > limits.max_upload_bytes + 100_000:
            raise HTTPException(status_code=413, detail=f"the request is larger than {limits.max_upload_bytes} bytes")
        image = None
        if content_type.startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                raise HTTPException(status_code=400, detail="the body is not valid JSON: send {\"message\": \"...\"}") from None
            if not isinstance(body, dict):
                raise HTTPException(status_code=400, detail="send a JSON object: {\"message\": \"...\"}")
            message = body.get("message")
            if body.get("image") is not None:  # optional base64-encoded PNG/JPEG
                image = decode_base64_image(body["image"])
        elif content_type.startswith("multipart/form-data"):
            form = await request.form()
            message = form.get("message")
            upload = form.get("image")
            if upload is not None and not isinstance(upload, str):
                image = await run_in_threadpool(read_upload, upload)
        else:
            raise HTTPException(status_code=415, detail="send JSON {\"message\": ...} or a multipart form "
                                                        "with a message field and an optional image file")
        if message is not None and not isinstance(message, str):
            raise HTTPException(status_code=400, detail="message must be a string")
        text = check_text(message, "message", limits.max_message_characters)
        try:
            return dict(await run_in_threadpool(backend("support"), text, image))
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    @app.get("/photo/{sku_id}")
    def photo(sku_id: str) -> Response:
        try:
            pixels = backend("photo")(sku_id)
        except (KeyError, ValueError):
            raise HTTPException(status_code=404, detail=f"unknown SKU {sku_id!r}") from None
        return Response(_png(pixels), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    return app


def default_backends(device: Any = None) -> Backends:
    """The offline shop's backends: fine-tuned CLIP search, hybrid recommender, support assistant.

    Each is built on the first request that needs it (training and caching it the first time,
    like the ``ecmm search`` / ``recommend`` / ``support`` commands).
    """
    shared: dict[str, Any] = {}

    def search() -> Any:
        from ecmm.search import load_catalog_search

        if "search" not in shared:
            shared["search"] = load_catalog_search(device=device, progress=False)
        return shared["search"]

    def recommend() -> Callable[[str, int], list]:
        from ecmm.cli.recommend import fit_recommender, load_shop

        data = load_shop()  # notebook 06's catalog, simulated log, split and content embeddings
        model = fit_recommender(data)  # the hybrid two-tower model, as `ecmm recommend` uses
        cold = set(data.split.cold_items.tolist())

        def top_k(user_id: str, k: int) -> list[dict]:
            user = data.split.user_index(user_id)  # ValueError for unknown users
            scores = model.score_users([user])[0]
            return [{"sku_id": str(data.catalog["sku_id"].iat[i]), "title": str(data.catalog["title"].iat[i]),
                     "product_type": str(data.catalog["product_type"].iat[i]),
                     "colour": str(data.catalog["colour"].iat[i]), "category": str(data.catalog["category"].iat[i]),
                     "score": round(float(scores[i]), 4), "new_product": i in cold}
                    for i in model.recommend(user=user, k=k)]

        top_k.user_ids = [str(user) for user in data.split.user_ids]  # known users, for examples
        return top_k

    def support() -> Callable[[str, Any], dict]:
        from ecmm.cli.support import load_support_classifier
        from ecmm.data.intents import load_faq
        from ecmm.service.replies import SupportAssistant

        classifier, threshold = load_support_classifier(device=device)

        def find_product(image: np.ndarray) -> str:
            best = search().search_image(image, k=1).iloc[0]
            return f"{best['colour']} {best['product_type']} ({best['sku_id']})"

        assistant = SupportAssistant(classifier, load_faq(), threshold, product_finder=find_product)

        def answer(message: str, image: Any) -> dict:
            reply = assistant.reply(message, image=image).to_dict()
            reply.pop("slots", None)
            reply["confidence"] = round(float(reply["confidence"]), 4)
            return reply

        return answer

    def photo() -> Callable[[str], np.ndarray]:
        from ecmm.data import load_catalog, load_photos

        catalog, photos = load_catalog("offline"), load_photos("offline")
        rows = {sku: row for row, sku in enumerate(catalog["sku_id"].astype(str))}
        return lambda sku_id: photos[rows[sku_id], 0]

    return Backends(search=search, recommend=recommend, support=support, photo=photo)


PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ecmm shop search</title>
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}
 form{display:flex;gap:.5rem} input{flex:1;font-size:1.1rem;padding:.4rem}
 #results{display:grid;grid-template-columns:repeat(auto-fill,minmax(8rem,1fr));gap:1rem;margin-top:1rem}
 figure{margin:0;text-align:center;font-size:.8rem} img{width:96px;height:96px;image-rendering:pixelated}
 #status{color:#555;margin-top:.5rem}
</style></head>
<body>
<h1>ecmm shop</h1>
<form id="search-form"><input id="query" name="q" placeholder="e.g. red backpack" maxlength="200" autofocus>
<button type="submit">Search</button></form>
<div id="status"></div><div id="results"></div>
<script>
const form = document.getElementById("search-form"), input = document.getElementById("query");
const results = document.getElementById("results"), statusLine = document.getElementById("status");
async function runSearch(query) {
  results.innerHTML = "";
  if (!query.trim()) { statusLine.textContent = "Type what you are looking for."; return; }
  statusLine.textContent = "Searching...";
  const response = await fetch("/search?k=12&q=" + encodeURIComponent(query));
  const body = await response.json();
  if (!response.ok) { statusLine.textContent = "Error: " + body.detail; return; }
  statusLine.textContent = body.length + " results for \\u201c" + query + "\\u201d";
  for (const item of body) {
    const figure = document.createElement("figure"), image = document.createElement("img");
    image.className = "result-image"; image.alt = item.title;
    image.onload = () => image.setAttribute("data-loaded", "1");
    image.src = "/photo/" + encodeURIComponent(item.sku_id);
    const caption = document.createElement("figcaption");
    caption.textContent = item.title + " (" + Number(item.score).toFixed(2) + ")";
    figure.append(image, caption); results.append(figure);
  }
}
form.addEventListener("submit", (event) => { event.preventDefault(); runSearch(input.value); });
const initial = new URLSearchParams(location.search).get("q");
if (initial) { input.value = initial; form.requestSubmit(); }
</script></body></html>
"""
