"""The registry behind ``ecmm prepare``: every cached artefact, what it needs, who builds it.

Each asset is a folder under ``ECMM_HOME`` written by :func:`ecmm.artifacts.write_artifact`:
its files and a ``card.json`` (recipe, data, metrics, and the size and sha256 of every file)
written last. The registry adds ``built_from`` to the card: the fingerprint of each asset it
was built from, so a rebuilt dependency makes its dependants *outdated*.

An asset is ``ok``, ``missing``, ``damaged`` (a file or the card does not match) or
``outdated`` (another recipe version, a rebuilt dependency, or a card from an older kit).
:func:`ensure_asset` builds what is not ``ok`` into a temporary folder and swaps it in only
when it is complete, so an interrupted or forced rebuild never loses a good asset.
Builders are imported only when one is run, so that ``ecmm info`` stays fast.

Assets built from the shop's catalog and model are *scoped*: each (catalog, model) pair has its
own folder, ``ECMM_HOME/<scope>/assets/...`` (:mod:`ecmm.asset_scope`: :func:`active_shop`,
:func:`using_shop`; the default shop keeps the default layout). Their builders receive
``source=`` (and the fine-tuned model's builder ``model=``, the model spec). The ``catalog``
dependency stands for the active source: its fingerprint in ``built_from`` is
``source.fingerprint``, and only a source cached as the registry's ``catalog`` asset (the offline
shop) builds it; the kit's pretrained ``clip`` is built only for ``ecmm-clip``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ecmm.asset_builders import MissingBuilderError, accepted_arguments, load_function, recipe_version
from ecmm.artifacts import (CARD_NAME, ArtifactError, artifact_status, build_lock, card_fingerprint,
                            file_table, read_card, replace_folder)
from ecmm.asset_scope import Shop, active_shop, shop_of, using_shop
from ecmm.config import get_settings, write_json

__all__ = ["Asset", "AssetStatus", "ASSETS", "STATUSES", "MissingBuilderError", "Shop", "active_shop", "shop_of",
           "using_shop", "asset_dir", "asset_card", "get_asset", "asset_in_use", "builder_available", "asset_status",
           "check_assets", "ensure_asset", "repair_assets", "override_builders"]

STATUSES = ("ok", "missing", "damaged", "outdated")
LEGACY = "card from an older kit, without checksums"  # outdated, still loads; `ecmm prepare` rebuilds it


@dataclass(frozen=True)
class Asset:
    """One cached artefact and how to build it."""

    name: str  # registry key, e.g. "backbone"
    description: str  # one line for `ecmm info` and `ecmm prepare --check`
    folder: str | None  # folder under ECMM_HOME; None: the data store decides (versioned name)
    builder: str | Callable[..., Any]  # "module:function" imported when run, or a callable (tests)
    depends_on: tuple[str, ...] = ()  # assets it is built from (built first; a rebuild outdates it)
    default: bool = False  # built by a plain `ecmm prepare`; the others are built on first use
    model_from: str | None = None  # the builder also receives `model=`, the CLIP model of this asset
    scoped: bool = False  # built from the shop's (catalog, model): one folder per pair, `source=` to the builder
    model_spec: bool = False  # the builder also receives `model=`, the active model spec (a string)
    key: str | None = None  # "module:function", key(source) -> dict of what else it is built for (seed, quick)


ASSETS: tuple[Asset, ...] = (
    Asset("catalog", "offline shop catalog and photos", None, "ecmm.data.store:write_catalog", default=True),
    Asset("source", "source-domain icon corpus", None, "ecmm.data.store:write_source_corpus", default=True),
    Asset("backbone", "image backbone pretrained on the source corpus", "assets/backbone",
          "ecmm.pretraining.backbone:build", ("source",), default=True),
    Asset("clip", "CLIP-style model pretrained on the source corpus", "assets/clip",
          "ecmm.pretraining.clip:build", ("backbone", "source"), default=True),
    Asset("shop_clip", "CLIP model fine-tuned on the shop catalog", "assets/shop_clip",
          "ecmm.finetune:build_shop_model", ("clip", "catalog"), default=True, scoped=True, model_spec=True),
    Asset("support", "customer-support intent classifier", "assets/support",
          "ecmm.service.assistant:build_support_classifier", default=True),
    Asset("search_index", "index of the catalog photos under the shop model", "assets/search_index",
          "ecmm.search_assets:build_catalog_index", ("shop_clip", "catalog"), model_from="shop_clip", scoped=True,
          default=True),
    Asset("query_encoder", "query encoders of the shop model exported to ONNX (fast text queries)",
          "assets/query_encoder", "ecmm.query_encoder_asset:build_query_encoder", ("shop_clip",), model_from="shop_clip",
          scoped=True, default=True),
    Asset("support_encoder", "support classifier exported to ONNX (fast replies)", "assets/support_encoder",
          "ecmm.service.assistant:build_support_encoder", ("support",), default=True),
    Asset("recommender", "content embeddings of the catalog for recommendation", "assets/recommender",
          "ecmm.recsys.embeddings:build_content_embeddings", ("catalog",), scoped=True, default=True),
    Asset("fitted_recommender", "hybrid two-tower recommender fitted on the shop's log",
          "assets/fitted_recommender", "ecmm.recsys.pipeline:build_fitted_recommender", ("recommender", "catalog"),
          scoped=True, key="ecmm.recsys.pipeline:fitted_recommender_key", default=True),
)

SOURCE_ASSET = "catalog"  # the asset a dependency on "the shop's catalog" names (the offline shop's cache)
KIT_MODEL_ASSET = "clip"  # the kit's pretrained CLIP: a dependency only when the shop runs on it


@dataclass(frozen=True)
class AssetStatus:
    """What ``ecmm prepare --check`` reports for one asset."""

    name: str  # registry key
    status: str  # one of STATUSES
    path: Path  # the asset's folder
    detail: str  # why it is not ok, in words ("" when ok)


def get_asset(name: str) -> Asset:
    """The registry entry called ``name``."""
    for asset in ASSETS:
        if asset.name == name:
            return asset
    raise ValueError(f"Unknown asset {name!r}: choose from {[a.name for a in ASSETS]}.")


def asset_in_use(name: str, shop: Shop | None = None) -> bool:
    """Whether the shop needs ``name`` at all: a folder or hub catalog has no ``catalog`` asset (the
    source is read directly), and an open_clip model needs neither the kit's pretrained ``clip`` nor
    what that is built from."""
    shop = shop or active_shop()
    if name == SOURCE_ASSET:
        return shop.caches_source
    if name == KIT_MODEL_ASSET or name in _kit_model_chain():
        return shop.uses_kit_model
    return True


def _kit_model_chain() -> set[str]:
    """The assets the kit's pretrained ``clip`` is built from, directly or not."""
    chain, frontier = set(), [KIT_MODEL_ASSET]
    while frontier:
        for dependency in get_asset(frontier.pop()).depends_on:
            if dependency not in chain:
                chain.add(dependency)
                frontier.append(dependency)
    return chain


def asset_dir(name: str) -> Path:
    """Folder of an asset under ``ECMM_HOME`` (it may not be built yet); a scoped asset's is the
    active shop's (:func:`active_shop`)."""
    asset = get_asset(name)
    if asset.folder is None:
        from ecmm.data.store import data_dir

        return data_dir(name)
    settings = get_settings()
    home = settings.home
    folder = asset.folder + ("-quick" if asset.key and settings.quick else "")  # quick runs never replace full ones
    if asset.scoped:
        scope = active_shop().scope
        return home / scope / folder if scope else home / folder
    return home / folder


def asset_card(name: str) -> dict | None:
    """The asset's card (file sizes checked, contents not hashed), or None when it is not built.

    Raises:
        ecmm.artifacts.ArtifactError: the asset is damaged (the message says what to run).
    """
    try:
        return read_card(asset_dir(name), verify=False)
    except ArtifactError as error:
        if error.problem == "not built":
            return None
        raise


def builder_available(name: str) -> bool:
    """Whether the builder of ``name`` can be imported (nothing is built)."""
    asset = get_asset(name)
    try:
        load_function(asset.builder, asset.name)
    except MissingBuilderError:
        return False
    return True


def _dependency_fingerprint(dependency: str, shop: Shop) -> str:
    """What ``built_from`` records for one dependency: its card's fingerprint; for the shop's catalog,
    ``source.fingerprint`` (the same value as the offline catalog asset's card fingerprint).

    Raises:
        ArtifactError: the dependency is not built or damaged.
    """
    if dependency == SOURCE_ASSET and not shop.caches_source:
        return shop.source.fingerprint
    return card_fingerprint(read_card(asset_dir(dependency), verify=False))


def _key(asset: Asset, shop: Shop) -> dict | None:
    """The asset's key for the shop (its ``key`` function's dict, JSON-normalised), or None."""
    if asset.key is None:
        return None
    function = load_function(asset.key, asset.name, role="keyed")
    return json.loads(json.dumps(function(shop.source), sort_keys=True, default=str))


def _outdated_reason(asset: Asset, card: Mapping[str, Any], recipe: bool) -> str:
    """Why a readable card is outdated ("" when it is current; :data:`LEGACY` for an older kit's card)."""
    current = recipe_version(asset.builder) if recipe else None
    recorded = (card.get("recipe") or {}).get("version", 1) if isinstance(card.get("recipe"), dict) else None
    if current is not None and recorded != current:
        return f"recipe version {recorded}, the kit's is {current}"
    if card.get("legacy"):
        return LEGACY
    shop = active_shop()
    key = None
    if recipe and asset.key is not None:
        with contextlib.suppress(ArtifactError):  # a damaged catalog is reported on its own line
            key = _key(asset, shop)
    if key is not None:
        if card.get("key") != key:
            recorded_key = card.get("key") if isinstance(card.get("key"), dict) else {}
            changed = sorted(name for name in set(key) | set(recorded_key) if key.get(name) != recorded_key.get(name))
            return f"built for another {', '.join(changed) or 'key'}"
    built_from = card.get("built_from") if isinstance(card.get("built_from"), dict) else {}
    for dependency in asset.depends_on:
        if dependency not in built_from or not (dependency == SOURCE_ASSET or asset_in_use(dependency, shop)):
            continue
        try:
            fingerprint = _dependency_fingerprint(dependency, shop)
        except ArtifactError:
            continue  # a missing or damaged dependency is reported on its own line
        if fingerprint != built_from[dependency]:
            return f"built from another {dependency} (rebuilt since)"
    return ""


def asset_status(name: str, verify: bool = True, recipe: bool = True) -> AssetStatus:
    """The status of one asset.

    Args:
        name: registry key.
        verify: hash every file again (a full check); False checks the card and file sizes only.
        recipe: compare the card with the builder's ``RECIPE_VERSION`` (imports the builder).

    Returns:
        An :class:`AssetStatus`.
    """
    asset, folder = get_asset(name), asset_dir(name)
    status = artifact_status(folder, verify=verify)
    if status == "missing":
        return AssetStatus(name, "missing", folder, "" if asset.default else "built on first use")
    if status.startswith("damaged"):
        return AssetStatus(name, "damaged", folder, status.partition(": ")[2])
    reason = _outdated_reason(asset, read_card(folder, verify=False), recipe)
    return AssetStatus(name, "outdated" if reason else "ok", folder, reason)


def check_assets(verify: bool = True, recipe: bool = True) -> list[AssetStatus]:
    """The status of every asset, in registry order (see :func:`asset_status` for the options)."""
    return [asset_status(asset.name, verify=verify, recipe=recipe) for asset in ASSETS]


def _current_status(asset: Asset) -> tuple[str, bool]:
    """(status, only_legacy) with sha256s checked once per process: what :func:`ensure_asset` acts on.

    ``only_legacy``: outdated for no other reason than an older kit's card (it still loads).
    """
    folder = asset_dir(asset.name)
    try:
        card = read_card(folder)
    except ArtifactError as error:
        return ("missing" if error.problem == "not built" else "damaged"), False
    reason = _outdated_reason(asset, card, recipe=True)
    return ("outdated" if reason else "ok"), reason == LEGACY


def _usable(asset: Asset, upgrade_legacy: bool) -> bool:
    """Whether :func:`ensure_asset` can return the folder as it is."""
    status, only_legacy = _current_status(asset)
    return status == "ok" or (only_legacy and not upgrade_legacy)


_BUILT: list[str] = []  # names built in this process, in order (repair_assets reports them)


def _seal(asset: Asset, staging: Path) -> None:
    """Check what the builder wrote and add ``built_from`` (and, for an older builder, ``files``)."""
    card_path = staging / CARD_NAME
    if not card_path.is_file():
        raise RuntimeError(f"the builder of {asset.name!r} wrote no {CARD_NAME} into {staging}")
    card = json.loads(card_path.read_text())
    if isinstance(card.get("files"), dict) and card["files"]:
        read_card(staging, command=f"ecmm prepare --force --only {asset.name}")
    else:  # a builder that does not use write_artifact yet: the registry records the checksums
        card["files"] = file_table(staging)
    shop, built_from = active_shop(), {}
    for dependency in asset.depends_on:
        if dependency == SOURCE_ASSET or asset_in_use(dependency, shop):
            with contextlib.suppress(ArtifactError):
                built_from[dependency] = _dependency_fingerprint(dependency, shop)
    card.update(asset=card.get("asset", asset.name), built_from=built_from)
    if asset.key is not None:
        card["key"] = _key(asset, shop)
    if asset.scoped:
        card["shop"] = {"catalog": shop.source.name, "model": shop.model, "scope": shop.scope}
    write_json(card_path, card)


def _builder_arguments(asset: Asset, builder: Callable[..., Any], progress: bool) -> dict[str, Any]:
    """``progress``, plus ``source=`` for a scoped asset and ``model=`` (the spec, or the model of
    ``model_from``). A builder that does not take them builds only the default shop's assets.

    Raises:
        MissingBuilderError: the shop is not the default one and the builder cannot be told which it is.
    """
    shop = active_shop()
    arguments: dict[str, Any] = {"progress": progress}
    if asset.scoped:
        arguments["source"] = shop.source
    if asset.model_from:
        from ecmm.models.clip import load_clip_model

        arguments["model"] = load_clip_model(ensure_asset(asset.model_from, progress=progress))
    elif asset.model_spec:
        arguments["model"] = shop.model
    return accepted_arguments(builder, arguments, asset.name, shop.describe() if shop.scope else None)


def _build(asset: Asset, progress: bool) -> None:
    """Build into ``.<folder>.build-<pid>`` beside the folder, then swap it in (only on success)."""
    folder = asset_dir(asset.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.build-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    builder = load_function(asset.builder, asset.name)
    staging.mkdir()
    try:
        builder(staging, **_builder_arguments(asset, builder, progress))
        _seal(asset, staging)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _BUILT.append(asset.name)


def _bring_dependencies_up(asset: Asset, progress: bool) -> None:
    """Build the dependencies that are missing, damaged or outdated (a legacy card is accepted)."""
    for dependency in asset.depends_on:
        if not asset_in_use(dependency):
            continue  # e.g. the offline catalog for a folder catalog: the source is read directly
        status, legacy = _current_status(get_asset(dependency))
        if status != "ok" and not legacy:
            ensure_asset(dependency, progress=progress)


def _refresh_dependants(name: str, progress: bool) -> None:
    """Rebuild the built assets that depend on ``name`` and are outdated now."""
    for asset in ASSETS:
        if name in asset.depends_on and asset_in_use(asset.name) and _current_status(asset)[0] == "outdated":
            ensure_asset(asset.name, progress=progress)


def ensure_asset(name: str, force: bool = False, progress: bool = True, upgrade_legacy: bool = False, *,
                 source: Any = None, model: str | None = None) -> Path:
    """Build an asset if it is missing, damaged or outdated (or when ``force``); return its folder.

    Its dependencies are brought up first (missing, damaged or outdated ones are built). After a
    build, the built assets that depend on it and are outdated now are rebuilt too. A build goes
    into a temporary folder that replaces the old one only when complete.

    Args:
        name: registry key.
        force: rebuild even when it is ok (the dependencies are not forced).
        progress: show the builders' progress bars.
        upgrade_legacy: also rebuild a card from an older kit (``ecmm prepare`` does; on first
            use such a card is used as it is, so an existing cache keeps working).
        source, model: the shop of a scoped asset (None: :func:`active_shop`'s).

    Raises:
        MissingBuilderError: the asset has to be built and its builder is not in this kit.
    """
    if source is not None or model is not None:
        with using_shop(source, model):
            return ensure_asset(name, force, progress, upgrade_legacy)
    asset = get_asset(name)
    if not force and _usable(asset, upgrade_legacy):
        return asset_dir(name)
    with build_lock(asset_dir(name), get_settings().home):
        if not force and _usable(asset, upgrade_legacy):  # built by another process while this one waited
            return asset_dir(name)
        _bring_dependencies_up(asset, progress)
        _build(asset, progress)
    _refresh_dependants(name, progress)
    return asset_dir(name)


def repair_assets(progress: bool = True) -> list[str]:
    """Rebuild every built asset that is damaged or outdated (older kits' cards included), and
    the dependants that it outdates.

    Missing assets stay missing (``ecmm prepare`` builds the default ones; the others are built
    on first use), unless a damaged asset needs them.

    Returns:
        The names rebuilt, in order.
    """
    start = len(_BUILT)
    for status in check_assets():
        if status.status in ("damaged", "outdated") and status.name not in _BUILT[start:]:
            ensure_asset(status.name, progress=progress, upgrade_legacy=True)
    return _BUILT[start:]


@contextlib.contextmanager
def override_builders(builders: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Use other builders inside the block (tests: tiny stubs in a temporary ``ECMM_HOME``).

    A builder is called as ``builder(folder, progress=...)`` (plus ``source=`` for scoped assets and
    ``model=`` for assets with ``model_from`` or ``model_spec``, when it takes them) and writes
    ``folder`` with :func:`ecmm.artifacts.write_artifact`.
    """
    global ASSETS
    unknown = set(builders) - {asset.name for asset in ASSETS}
    if unknown:
        raise ValueError(f"Unknown assets {sorted(unknown)}: choose from {[a.name for a in ASSETS]}.")
    saved = ASSETS
    ASSETS = tuple(replace(asset, builder=builders.get(asset.name, asset.builder)) for asset in ASSETS)
    try:
        yield
    finally:
        ASSETS = saved

