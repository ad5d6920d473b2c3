"""Which shop the cached assets belong to: the (catalog, model) pair of a run.

Assets built from the shop's catalog and model (the fine-tuned model, the search index, the
recommender's embeddings and the fitted recommender) are kept per pair, under
``ECMM_HOME/<catalog_scope(source, model)>`` (:func:`ecmm.data.catalogs.catalog_scope`: ``""``,
the default layout, for the offline shop with ``ecmm-clip``). :func:`active_shop` is the pair
of this run: the one :func:`using_shop` sets, else ``open_catalog()`` and ``model_spec()``
(``ECMM_CATALOG``, ``ECMM_PROFILE``, ``ECMM_MODEL``), opened once per process and environment.
:mod:`ecmm.assets` puts its scoped assets in :attr:`Shop.scope`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

__all__ = ["Shop", "active_shop", "shop_of", "using_shop"]


@dataclass(frozen=True)
class Shop:
    """The (catalog, model) pair that scoped assets are built from.

    Attributes:
        source: an :class:`ecmm.data.catalogs.CatalogSource`.
        model: the model spec (``"ecmm-clip"``, an open_clip name[:tag], ``<config.json>:<checkpoint>``).
    """

    source: Any  # CatalogSource
    model: str  # model spec

    @functools.cached_property
    def scope(self) -> str:
        """The sub-folder of ``ECMM_HOME`` of its scoped assets (``""``: the default layout)."""
        from ecmm.data.catalogs import catalog_scope

        return catalog_scope(self.source, self.model)

    @functools.cached_property
    def caches_source(self) -> bool:
        """Whether its catalog is the registry's ``catalog`` asset (the one source the registry builds)."""
        from ecmm.data.catalogs import OfflineSource

        return isinstance(self.source, OfflineSource)

    @functools.cached_property
    def uses_kit_model(self) -> bool:
        """Whether its model is the kit's own pretrained CLIP (the registry's ``clip`` asset)."""
        from ecmm.data.catalogs import DEFAULT_MODEL

        return self.model == DEFAULT_MODEL

    def describe(self) -> str:
        """One line for people: the catalog and the model."""
        return f"catalog: {self.source.describe()}; model: {self.model}"


_ACTIVE: contextvars.ContextVar[Shop | None] = contextvars.ContextVar("ecmm_active_shop", default=None)
_DEFAULT_SHOPS: dict[tuple, Shop] = {}  # environment -> the shop it names (opened once per process)
_SHOP_ENVIRONMENT = ("ECMM_HOME", "ECMM_PROFILE", "ECMM_QUICK", "ECMM_CATALOG", "ECMM_MODEL", "ECMM_SKIP_BAD_IMAGES",
                     "ECMM_HUB_DATA")


def _environment_key() -> tuple:
    values = tuple(os.environ.get(name, "") for name in _SHOP_ENVIRONMENT)
    catalog = os.environ.get("ECMM_CATALOG", "").strip()
    stamp: tuple = ()
    if catalog:
        with contextlib.suppress(OSError):
            stat = Path(catalog).expanduser().stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
    return values + stamp


def active_shop() -> Shop:
    """The shop that scoped assets are built from: :func:`using_shop`'s, else the environment's.

    Raises:
        ecmm.data.folder.CatalogError: ``ECMM_CATALOG`` names a malformed catalog.
    """
    shop = _ACTIVE.get()
    if shop is not None:
        return shop
    key = _environment_key()
    if key not in _DEFAULT_SHOPS:
        from ecmm.data.catalogs import model_spec, open_catalog

        _DEFAULT_SHOPS[key] = Shop(open_catalog(), model_spec())
    return _DEFAULT_SHOPS[key]


def shop_of(source: Any = None, model: str | None = None) -> Shop:
    """The :class:`Shop` of ``(source, model)``; a None part is the active shop's (the catalog is
    opened only when ``source`` is None).

    Raises:
        ecmm.data.folder.CatalogError: ``source`` is None and ``ECMM_CATALOG`` names a malformed catalog.
    """
    from ecmm.data.catalogs import model_spec

    active = _ACTIVE.get()
    if source is None:
        active = active or active_shop()
        source = active.source
    if model is None:
        return Shop(source, active.model if active is not None else model_spec())
    return Shop(source, model_spec(model))


@contextlib.contextmanager
def using_shop(source: Any = None, model: str | None = None) -> Iterator[Shop]:
    """Inside the block, scoped assets are those of ``(source, model)`` (see :func:`shop_of`).

    Args:
        source: a catalog source; None: the active one (else ``open_catalog()``).
        model: a model spec; None: the active one (else ``model_spec()``).
    """
    token = _ACTIVE.set(shop_of(source, model))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)
