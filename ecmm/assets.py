"""The registry behind ``ecmm prepare``: what is built, in which order, where it is cached.

Each asset is a folder under ``ECMM_HOME`` holding its files and a ``card.json`` (recipe, data,
metrics, sha256) written last; a folder without a card is unfinished and is rebuilt.
Builders are imported only when needed, so that ``ecmm info`` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ecmm.config import get_settings


@dataclass(frozen=True)
class Asset:
    """One preparable thing."""

    name: str  # registry key, e.g. "backbone"
    description: str  # one line for `ecmm info`
    folder: str | None  # folder under ECMM_HOME; None: the data store decides (versioned)


ASSETS: tuple[Asset, ...] = (
    Asset("catalog", "offline shop catalog and photos", None),
    Asset("source", "source-domain icon corpus", None),
    Asset("backbone", "image backbone pretrained on the source corpus", "assets/backbone"),
    Asset("clip", "CLIP-style model pretrained on the source corpus", "assets/clip"),
)


def _asset(name: str) -> Asset:
    for asset in ASSETS:
        if asset.name == name:
            return asset
    raise ValueError(f"Unknown asset {name!r}: choose from {[a.name for a in ASSETS]}.")


def asset_dir(name: str) -> Path:
    """Folder of an asset under ``ECMM_HOME`` (it may not be built yet)."""
    asset = _asset(name)
    if asset.folder is None:
        from ecmm.data.store import data_dir

        return data_dir(name)
    return get_settings().home / asset.folder


def asset_card(name: str) -> dict | None:
    """The asset's JSON card, or None when it is not built."""
    card = asset_dir(name) / "card.json"
    return json.loads(card.read_text()) if card.is_file() else None


def _builder(name: str) -> Callable[[Path], object]:
    if name == "catalog":
        from ecmm.data.store import prepare_catalog

        return lambda folder, force=False: prepare_catalog(force=force)
    if name == "source":
        from ecmm.data.store import prepare_source_corpus

        return lambda folder, force=False: prepare_source_corpus(force=force)
    if name == "backbone":
        from ecmm.pretraining.backbone import build

        return lambda folder, force=False: build(folder)
    if name == "clip":
        from ecmm.pretraining.clip import build

        return lambda folder, force=False: build(folder)
    raise ValueError(f"No builder for asset {name!r}.")


_RECIPE_MODULES = {"backbone": "ecmm.pretraining.backbone", "clip": "ecmm.pretraining.clip"}


def _outdated(name: str) -> bool:
    """Whether a built asset's card records another recipe version than its builder's ``RECIPE_VERSION``."""
    card = asset_card(name)
    if card is None or name not in _RECIPE_MODULES:
        return False
    import importlib

    current = getattr(importlib.import_module(_RECIPE_MODULES[name]), "RECIPE_VERSION", 1)
    return card.get("recipe", {}).get("version", 1) != current


def ensure_asset(name: str, force: bool = False) -> Path:
    """Build an asset if it is missing or outdated (or when ``force``), and return its folder."""
    folder = asset_dir(name)
    if (force or _outdated(name)) and (folder / "card.json").exists():
        (folder / "card.json").unlink()
    if asset_card(name) is None:
        _builder(name)(folder, force=force)
        if asset_card(name) is None:
            raise RuntimeError(f"Building {name!r} finished without writing {folder / 'card.json'}.")
    return folder
