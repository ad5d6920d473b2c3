"""A damaged cache is found, refused with the repair command, and repaired to identical results.

Every asset is built by a tiny stub builder in a temporary ECMM_HOME (the data store also runs
for real on a three-product catalog); nothing here touches the default cache.
"""

import functools
import json

import numpy as np
import pytest
import torch
from test_assets import stub_builders

from ecmm import assets
from ecmm.artifacts import CARD_NAME, REPAIR_COMMAND, ArtifactError, forget_verified, read_card
from ecmm.cli import main
from ecmm.data import store
from ecmm.data.catalog import PRODUCT_TYPES
from ecmm.index import EmbeddingIndex

DAMAGES = ("truncate", "flip_bytes", "delete_card", "corrupt_card")


def damage(folder, how):
    """Damage an asset folder the way a full disk, a bad copy or a stray edit would."""
    card = json.loads((folder / CARD_NAME).read_text())
    largest = folder / max(card["files"], key=lambda name: card["files"][name]["size"])
    if how == "truncate":
        largest.write_bytes(largest.read_bytes()[: card["files"][largest.name]["size"] // 2])
    elif how == "flip_bytes":
        data = bytearray(largest.read_bytes())
        data[len(data) // 2] ^= 0xFF
        largest.write_bytes(bytes(data))
    elif how == "delete_card":
        (folder / CARD_NAME).unlink()
    else:
        (folder / CARD_NAME).write_text((folder / CARD_NAME).read_text()[:40])  # `Expecting ',' delimiter`
    forget_verified()  # as in a new process


def tables(names):
    return {name: read_card(assets.asset_dir(name))["files"] for name in names}


@pytest.fixture()
def stub_cache(tmp_path, monkeypatch):
    """Every asset built once by stubs in a temporary ECMM_HOME."""
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    monkeypatch.setattr("ecmm.models.clip.load_clip_model", lambda folder, device=None: "model", raising=False)
    forget_verified()
    with assets.override_builders(stub_builders([])):
        for asset in assets.ASSETS:
            assets.ensure_asset(asset.name, progress=False)
        yield [asset.name for asset in assets.ASSETS]
    forget_verified()


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", [asset.name for asset in assets.ASSETS])
def test_each_damage_is_flagged_refused_and_repaired(stub_cache, capsys, name, how):
    before = tables(stub_cache)
    folder = assets.asset_dir(name)
    damage(folder, how)
    assert main(["prepare", "--check"]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(name + " "))
    assert line.split()[1] == "damaged" and str(folder) in line
    assert "ecmm prepare --repair" in out
    with pytest.raises(ArtifactError) as refused:  # every loader reads through read_card
        read_card(folder)
    assert str(folder) in str(refused.value) and REPAIR_COMMAND in str(refused.value)
    assert main(["prepare", "--repair"]) == 0
    assert tables(stub_cache) == before
    assert [s.status for s in assets.check_assets()] == ["ok"] * len(stub_cache)


def test_item_15_truncated_weights_are_not_ready_and_a_corrupt_card_does_not_crash(stub_cache, capsys):
    for name in ("backbone", "clip"):
        path = assets.asset_dir(name) / "data.bin"
        path.write_bytes(path.read_bytes()[:10])
    (assets.asset_dir("catalog") / CARD_NAME).write_text('{"files": {"table.json" "x"}}')
    from ecmm.cli.info import collect_info

    info = collect_info()
    assert info["prepared"]["backbone"] is info["prepared"]["clip"] is info["prepared"]["catalog"] is False
    assert info["prepared"]["source"] is True
    assert main(["prepare", "--check"]) == 1
    out = capsys.readouterr().out
    assert "10 bytes, its card says 400" in out and "card.json is unreadable (JSONDecodeError)" in out
    assert main(["prepare"]) == 0  # plain prepare repairs what --check flags
    out = capsys.readouterr().out
    assert "backbone  ready" in out and "was damaged: data.bin has 10 bytes" in out
    assert main(["prepare", "--check"]) == 0


def test_item_16_errors_name_the_folder_and_the_command(stub_cache):
    folder = assets.asset_dir("support")
    damage(folder, "truncate")
    with pytest.raises(ArtifactError) as raised:
        read_card(folder)
    message = str(raised.value)
    assert str(folder) in message and "`ecmm prepare --repair`" in message and "minilm" not in message.lower()


def test_item_17_interrupted_forced_rebuild_keeps_the_good_asset(stub_cache, capsys):
    before = tables(["clip"])

    def crash(folder, progress=True):
        (folder / "data.bin").write_bytes(b"half a model")
        raise RuntimeError("killed half-way")

    with assets.override_builders({"clip": crash}):
        assert main(["prepare", "--force", "--only", "clip"]) == 1
    assert "clip      failed: killed half-way" in capsys.readouterr().err
    assert tables(["clip"]) == before and assets.asset_status("clip").status == "ok"


def test_item_17_interrupted_index_save_keeps_the_previous_index(tmp_path, monkeypatch):
    index = EmbeddingIndex(3)
    index.add(torch.eye(3), ids=[7, 8, 9])
    folder = index.save(tmp_path / "index", card={"data": {"rows": 3}})
    bigger = EmbeddingIndex(3)
    bigger.add(torch.ones(5, 3))

    def torn_write(tensors, path):
        open(path, "wb").write(b"\x00" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr("ecmm.index.save_file", torn_write)
    with pytest.raises(KeyboardInterrupt):
        bigger.save(folder)
    loaded = EmbeddingIndex.load(folder)
    assert loaded.ids.tolist() == [7, 8, 9] and read_card(folder)["data"] == {"rows": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


@pytest.fixture()
def tiny_store(tmp_path, monkeypatch):
    """The real data store, on three product types and twelve source icons."""
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    forget_verified()
    monkeypatch.setattr("ecmm.models.clip.load_clip_model", lambda folder, device=None: "model", raising=False)
    builders = {**stub_builders([]),  # no real model is ever trained here
                "catalog": functools.partial(store.write_catalog, product_types=PRODUCT_TYPES[:3]),
                "source": functools.partial(store.write_source_corpus, limit=12)}
    with assets.override_builders(builders):
        for name in ("catalog", "source"):
            assets.ensure_asset(name, progress=False)
        yield tmp_path
    forget_verified()


def test_item_14_zeroed_photos_are_refused_then_repaired_identically(tiny_store, capsys):
    catalog, photos = store.offline_catalog()[0], np.array(store.offline_catalog()[1])
    assert photos.shape == (30, 4, 128, 128, 3) and len(catalog) == 30
    folder = store.data_dir("catalog")
    with open(folder / "images.npy", "r+b") as handle:  # zero most of the photos, keep the size
        handle.seek(128)
        handle.write(b"\x00" * (photos.nbytes - 128 * 1024))
    forget_verified()  # a new process: the photos were checked before the damage in this one
    with pytest.raises(ArtifactError, match="images.npy does not match its card's sha256") as refused:
        store.offline_catalog()[1]
    assert str(folder) in str(refused.value) and REPAIR_COMMAND in str(refused.value)

    assert main(["prepare", "--check", "--only", "catalog", "source"]) == 1
    assert "catalog       damaged" in capsys.readouterr().out
    assert main(["prepare", "--repair", "--only", "catalog"]) == 0
    assert np.array_equal(store.offline_catalog()[1], photos)
    assert store.offline_catalog()[0].equals(catalog)


def test_item_14_an_index_is_never_built_from_damaged_photos(tiny_store):
    photos = np.array(store.offline_catalog()[1])
    seen = []

    def index_from_photos(folder, progress=True, model=None):  # an index builder reads the photos
        seen.append(np.array_equal(store.offline_catalog()[1], photos))
        (folder / "card.json").write_text('{"recipe": {"version": 1}}')

    path = store.data_dir("catalog") / "images.npy"
    data = bytearray(path.read_bytes())
    data[128:] = bytes(len(data) - 128)  # black photos, same size
    path.write_bytes(bytes(data))
    forget_verified()
    with assets.override_builders({"search_index": index_from_photos}):
        assets.ensure_asset("search_index", progress=False)  # the damaged catalog is rebuilt first
    assert seen == [True] and assets.asset_status("catalog").status == "ok"


def test_legacy_data_folder_still_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    folder = store.data_dir("source")
    folder.mkdir(parents=True)
    (folder / "table.json").write_text('[{"emoji": "x", "name": "x", "group": "g", "label": 0}]')
    np.save(folder / "images.npy", np.zeros((1, 128, 128, 3), np.uint8))
    (folder / CARD_NAME).write_text(json.dumps({"rows": 1, "images_shape": [1, 128, 128, 3]}))
    frame, images = store.load_source_corpus()
    assert len(frame) == 1 and images.shape == (1, 128, 128, 3)
    assert assets.asset_status("source").status == "outdated"
    assert store.data_summary()["source"]["legacy"] is True and store.data_summary()["catalog"] is None
