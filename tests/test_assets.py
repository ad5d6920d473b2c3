"""Tests for ecmm.assets, the registry behind `ecmm prepare`, with tiny stub builders."""

import json

import pytest

from ecmm.config import get_settings

from ecmm import assets
from ecmm.artifacts import CARD_NAME, ArtifactError, forget_verified, read_card, write_artifact

CONTRACT = {  # asset -> builder named by the kit's layers (imported only when run)
    "catalog": "ecmm.data.store:write_catalog",
    "source": "ecmm.data.store:write_source_corpus",
    "backbone": "ecmm.pretraining.backbone:build",
    "clip": "ecmm.pretraining.clip:build",
    "shop_clip": "ecmm.finetune:build_shop_model",
    "support": "ecmm.service.assistant:build_support_classifier",
    "search_index": "ecmm.search_assets:build_catalog_index",
    "query_encoder": "ecmm.query_encoder_asset:build_query_encoder",
    "support_encoder": "ecmm.service.assistant:build_support_encoder",
    "recommender": "ecmm.recsys.embeddings:build_content_embeddings",
    "fitted_recommender": "ecmm.recsys.pipeline:build_fitted_recommender",
}


def stub_builders(log, payloads=None):
    """Builders writing one small file each (``payloads[name]`` or the name repeated); calls go to ``log``."""
    payloads = payloads if payloads is not None else {}

    def make(name):
        def build(folder, progress=True, model=None, source=None):
            log.append(name)
            payload = payloads.get(name, name.encode() * 50)
            write_artifact(folder, lambda temporary: (temporary / "data.bin").write_bytes(payload),
                           {"asset": name, "recipe": {"version": 1}, "model": repr(model),
                            "source": None if source is None else source.name})
        return build

    return {asset.name: make(asset.name) for asset in assets.ASSETS}


@pytest.fixture()
def stub_home(tmp_path, monkeypatch):
    """A temporary ECMM_HOME where every builder is a stub; yields the list of builds."""
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    monkeypatch.setattr("ecmm.models.clip.load_clip_model", lambda folder, device=None: f"model<{folder.name}>",
                        raising=False)
    forget_verified()
    log, payloads = [], {}
    with assets.override_builders(stub_builders(log, payloads)):
        yield log, payloads
    forget_verified()


def test_registry_lists_every_cached_artefact_with_its_builder():
    assert {a.name: a.builder for a in assets.ASSETS} == CONTRACT
    assert all(a.default for a in assets.ASSETS)  # a plain `ecmm prepare` builds what every command loads


def test_dependencies_come_first_in_registry_order():
    seen = set()
    for asset in assets.ASSETS:
        assert set(asset.depends_on) <= seen, asset.name
        assert asset.model_from is None or asset.model_from in asset.depends_on
        seen.add(asset.name)
    assert assets.get_asset("search_index").depends_on == ("shop_clip", "catalog")
    assert assets.get_asset("clip").depends_on == ("backbone", "source")


def test_unknown_asset_names_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        assets.asset_dir("everything")
    with pytest.raises(ValueError, match="Unknown assets"):
        with assets.override_builders({"everything": print}):
            pass


def test_ensure_builds_dependencies_first_then_reuses(stub_home):
    log, _ = stub_home
    folder = assets.ensure_asset("search_index", progress=False)
    assert log == ["source", "backbone", "clip", "catalog", "shop_clip", "search_index"]
    card = read_card(folder)
    assert card["model"] == "'model<shop_clip>'"  # the builder got the shop model
    assert set(card["built_from"]) == {"shop_clip", "catalog"}
    assets.ensure_asset("search_index", progress=False)
    assert len(log) == 6  # everything ok: nothing rebuilt
    assert [s.status for s in assets.check_assets()] == ["ok"] * 5 + ["missing", "ok"] + ["missing"] * 4


def test_damaged_missing_and_outdated_are_rebuilt(stub_home):
    log, _ = stub_home
    folder = assets.ensure_asset("catalog", progress=False)
    (folder / "data.bin").write_bytes(b"x")
    assert assets.asset_status("catalog").status == "damaged"
    assets.ensure_asset("catalog", progress=False)
    assert log == ["catalog", "catalog"] and assets.asset_status("catalog").status == "ok"


def test_recipe_version_decides_outdated(stub_home, monkeypatch):
    log, _ = stub_home
    assets.ensure_asset("catalog", progress=False)
    builder = assets.get_asset("catalog").builder
    monkeypatch.setattr(builder, "RECIPE_VERSION", 2, raising=False)
    status = assets.asset_status("catalog")
    assert status.status == "outdated" and "recipe version 1, the kit's is 2" in status.detail
    assets.ensure_asset("catalog", progress=False)
    assert log == ["catalog", "catalog"]


def test_rebuilt_dependency_outdates_and_rebuilds_its_dependants(stub_home):
    log, payloads = stub_home
    assets.ensure_asset("clip", progress=False)
    assert log == ["source", "backbone", "clip"]
    payloads["backbone"] = b"another backbone"  # a rebuild that gives other weights
    assets.ensure_asset("backbone", force=True, progress=False)
    assert log[3:] == ["backbone", "clip"]  # clip was built from the old backbone
    payloads.pop("backbone")
    log.clear()
    assets.ensure_asset("backbone", force=True, progress=False)
    assets.ensure_asset("backbone", force=True, progress=False)  # same bytes twice: clip stays
    assert log == ["backbone", "clip", "backbone"]


def test_legacy_card_is_used_as_a_dependency_and_rebuilt_when_asked_for(stub_home):
    log, _ = stub_home
    for name in ("source", "backbone"):
        folder = assets.asset_dir(name)
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"old kit")
        (folder / CARD_NAME).write_text(json.dumps({"sha256": "0" * 64}))
    assets.ensure_asset("clip", progress=False)
    assert log == ["clip"]  # the old backbone still serves
    status = assets.asset_status("backbone")
    assert status.status == "outdated" and status.detail == assets.LEGACY
    assets.ensure_asset("backbone", progress=False)  # on first use an old card is used as it is
    assert log == ["clip"]
    assets.ensure_asset("backbone", progress=False, upgrade_legacy=True)  # what `ecmm prepare` does
    assert log == ["clip", "backbone", "clip"]


def test_legacy_card_of_another_recipe_version_is_rebuilt_on_first_use(stub_home, monkeypatch):
    log, _ = stub_home
    folder = assets.asset_dir("source")
    folder.mkdir(parents=True)
    (folder / "data.bin").write_bytes(b"old kit")
    (folder / CARD_NAME).write_text(json.dumps({"recipe": {"steps": 3000}}))  # no version: 1
    monkeypatch.setattr(assets.get_asset("source").builder, "RECIPE_VERSION", 2, raising=False)
    assert "recipe version 1, the kit's is 2" in assets.asset_status("source").detail
    assets.ensure_asset("source", progress=False)
    assert log == ["source"]


def test_check_and_repair_rebuild_exactly_the_damaged_ones(stub_home):
    log, payloads = stub_home
    for name in ("clip", "support"):
        assets.ensure_asset(name, progress=False)
    (assets.asset_dir("support") / "data.bin").write_bytes(b"y" * len(b"support" * 50))  # same size
    (assets.asset_dir("backbone") / CARD_NAME).write_text("{")  # corrupt card
    statuses = {s.name: s for s in assets.check_assets()}
    assert statuses["support"].status == "damaged" and "sha256" in statuses["support"].detail
    assert statuses["backbone"].status == "damaged" and "card.json" in statuses["backbone"].detail
    assert statuses["clip"].status == statuses["source"].status == "ok"
    assert statuses["catalog"].status == "missing"
    log.clear()
    payloads["backbone"] = b"the backbone rebuilt differently"
    assert assets.repair_assets(progress=False) == ["backbone", "clip", "support"]
    assert [s.status for s in assets.check_assets()] == ["missing"] + ["ok"] * 3 + ["missing", "ok"] + ["missing"] * 5
    assert assets.repair_assets(progress=False) == []


def test_forced_rebuild_that_fails_keeps_the_good_asset(stub_home):
    log, _ = stub_home
    folder = assets.ensure_asset("source", progress=False)
    card_before = (folder / CARD_NAME).read_text()

    def crash(folder, progress=True):
        (folder / "data.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with assets.override_builders({"source": crash}):
        with pytest.raises(KeyboardInterrupt):
            assets.ensure_asset("source", force=True, progress=False)
    assert (folder / CARD_NAME).read_text() == card_before and assets.asset_status("source").status == "ok"
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no build folder left


def test_builder_without_checksums_gets_them_from_the_registry(stub_home):
    def old_style(folder, progress=True):  # writes its files and a card in place, as older builders did
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / CARD_NAME).write_text(json.dumps({"recipe": {"version": 1}}))

    with assets.override_builders({"source": old_style}):
        folder = assets.ensure_asset("source", progress=False)
    card = read_card(folder)
    assert card["files"]["model.safetensors"]["size"] == 7 and card["asset"] == "source"


def test_builder_that_writes_no_card_is_an_error(stub_home):
    with assets.override_builders({"source": lambda folder, progress=True: None}):
        with pytest.raises(RuntimeError, match="wrote no card.json"):
            assets.ensure_asset("source", progress=False)
    assert assets.asset_status("source").status == "missing"


def test_missing_builder_is_a_clear_error(stub_home):
    # override_builders restores the registry on exit (a monkeypatch of ASSETS would be undone after
    # stub_home's own restore, and leak the stub builders into later tests)
    with assets.override_builders({"support": "ecmm.nowhere:build_it"}):
        assert not assets.builder_available("support") and assets.builder_available("catalog")
        with pytest.raises(assets.MissingBuilderError, match="ecmm.nowhere.build_it"):
            assets.ensure_asset("support", progress=False)
    assert assets.builder_available("support")


def test_asset_card_is_none_when_missing_and_raises_when_damaged(stub_home):
    assert assets.asset_card("clip") is None
    folder = assets.ensure_asset("source", progress=False)
    assert assets.asset_card("source")["asset"] == "source"
    (folder / "data.bin").write_bytes(b"")
    with pytest.raises(ArtifactError, match="ecmm prepare --repair"):
        assets.asset_card("source")


class StubSource:
    """A catalog source that is not the offline shop (only what the registry reads)."""

    name, attribute_columns = "folder", ()

    def __init__(self, fingerprint="0123456789abcdef"):
        self.fingerprint = fingerprint

    def describe(self):
        return f"stub folder catalog {self.fingerprint}"


def test_the_default_shop_keeps_the_default_layout(stub_home, tmp_path):
    shop = assets.active_shop()
    assert shop.scope == "" and shop.model == "ecmm-clip"
    assert assets.asset_dir("shop_clip") == tmp_path / "assets" / "shop_clip"
    quick = "-quick" if get_settings().quick else ""  # a quick run's fit has its own folder
    assert assets.asset_dir("fitted_recommender") == tmp_path / "assets" / f"fitted_recommender{quick}"


def test_scoped_assets_of_another_catalog_live_in_their_own_folder(stub_home, tmp_path):
    log, _ = stub_home
    source = StubSource()
    with assets.using_shop(source, "ecmm-clip") as shop:
        assert shop.scope.startswith("shops/folder-0123456789ab-ecmm-clip-")
        assert assets.asset_dir("search_index") == tmp_path / shop.scope / "assets" / "search_index"
        assert assets.asset_dir("support") == tmp_path / "assets" / "support"  # not built from the catalog
        assert not assets.asset_in_use("catalog") and assets.asset_in_use("clip")
        folder = assets.ensure_asset("search_index", progress=False)
    assert log == ["source", "backbone", "clip", "shop_clip", "search_index"]  # no offline catalog
    card = read_card(folder)
    assert card["built_from"]["catalog"] == source.fingerprint and card["source"] == "folder"
    assert card["shop"]["scope"] == shop.scope
    assert not assets.asset_dir("search_index").exists()  # the default shop's is not built
    other = StubSource("fedcba9876543210")
    assert assets.ensure_asset("search_index", progress=False, source=other, model="ecmm-clip") != folder
    assert log[5:] == ["shop_clip", "search_index"]  # the kit's pretrained chain is shared


def test_an_open_clip_model_needs_neither_the_offline_catalog_nor_the_kit_model(stub_home):
    log, _ = stub_home
    folder = assets.ensure_asset("shop_clip", progress=False, source=StubSource(), model="ViT-B-32:laion2b_s34b_b79k")
    assert log == ["shop_clip"]
    assert "ViT-B-32" in str(folder) and read_card(folder)["model"] == "'ViT-B-32:laion2b_s34b_b79k'"
    with assets.using_shop(StubSource(), "ViT-B-32:laion2b_s34b_b79k"):
        assert [asset.name for asset in assets.ASSETS if not assets.asset_in_use(asset.name)] == \
            ["catalog", "source", "backbone", "clip"]


def test_a_builder_that_cannot_be_told_the_catalog_refuses_another_shop(stub_home):
    def offline_only(folder, progress=True):
        raise AssertionError("must not be called")

    with assets.override_builders({"recommender": offline_only}):
        with pytest.raises(assets.MissingBuilderError, match="does not take source="):
            assets.ensure_asset("recommender", progress=False, source=StubSource())


def test_a_keyed_asset_is_outdated_when_its_key_changes(stub_home, monkeypatch):
    import ecmm.recsys.pipeline

    log, _ = stub_home
    key = {"catalog": "abc", "seed": 0, "quick": True}
    monkeypatch.setattr(ecmm.recsys.pipeline, "fitted_recommender_key", lambda source: dict(key))
    monkeypatch.setattr(ecmm.recsys.pipeline, "RECIPE_VERSION", 1)
    folder = assets.ensure_asset("fitted_recommender", progress=False)
    assert read_card(folder)["key"] == key and assets.asset_status("fitted_recommender").status == "ok"
    key["quick"] = False  # e.g. a full run after a quick one
    status = assets.asset_status("fitted_recommender")
    assert status.status == "outdated" and status.detail == "built for another quick"
    assets.ensure_asset("fitted_recommender", progress=False)
    assert log.count("fitted_recommender") == 2 and read_card(folder)["key"]["quick"] is False


RACE = """
import os, sys, time
from pathlib import Path
from ecmm import assets
from ecmm.artifacts import write_artifact

def slow(folder, progress=True):
    with open(sys.argv[1], "a") as log:
        log.write(f"{os.getpid()}\\n")
    time.sleep(1.0)
    write_artifact(folder, lambda target: (target / "data.bin").write_bytes(b"x"), {"recipe": {"version": 1}})

with assets.override_builders({"source": slow}):
    print(assets.ensure_asset("source", progress=False))
"""


def test_two_processes_needing_one_asset_build_it_once(tmp_path):
    import os
    import subprocess
    import sys

    log = tmp_path / "builds.txt"
    environment = {**os.environ, "ECMM_HOME": str(tmp_path / "home")}
    runs = [subprocess.Popen([sys.executable, "-c", RACE, str(log)], env=environment, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert len(log.read_text().split()) == 1  # the second process waited, then found it built
    assert outputs[0][0] == outputs[1][0]  # both got the same folder
