"""Tests for ecmm.index.EmbeddingIndex."""

import json

import pytest
import torch

from ecmm.artifacts import ArtifactError, read_card
from ecmm.index import EmbeddingIndex


def _vectors():
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_search_returns_cosine_top_k(backend):
    index = EmbeddingIndex(3, backend=backend)
    index.add(_vectors(), ids=[10, 11, 12, 13])
    scores, ids = index.search(torch.tensor([[1.0, 0.1, 0.0]]), k=2)
    assert ids.tolist() == [[10, 13]]
    assert scores[0, 0].item() == pytest.approx(1 / (1.01 ** 0.5), rel=1e-5)
    assert scores[0, 1].item() == pytest.approx(1.1 / (1.01 ** 0.5 * 2 ** 0.5), rel=1e-5)


def test_exact_and_faiss_agree_on_random_data():
    generator = torch.Generator().manual_seed(0)
    data, queries = torch.randn(200, 16, generator=generator), torch.randn(7, 16, generator=generator)
    results = []
    for backend in ("exact", "faiss"):
        index = EmbeddingIndex(16, backend=backend, batch_size=3)
        index.add(data)
        results.append(index.search(queries, k=5))
    assert torch.equal(results[0][1], results[1][1])
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)


def test_default_ids_continue_and_k_is_capped():
    index = EmbeddingIndex(3)
    index.add(_vectors()[:2])
    index.add(_vectors()[2:])
    assert index.ids.tolist() == [0, 1, 2, 3]
    scores, ids = index.search(_vectors()[2], k=99)
    assert ids.shape == (1, 4) and ids[0, 0].item() == 2


def test_save_load_round_trip(tmp_path):
    index = EmbeddingIndex(3)
    index.add(_vectors(), ids=[5, 6, 7, 8])
    folder = index.save(tmp_path / "catalog", card={"data": {"rows": 4}})
    card = read_card(folder)
    assert card["kind"] == "ecmm.EmbeddingIndex" and card["size"] == 4 and card["data"] == {"rows": 4}
    assert set(card["files"]) == {"vectors.safetensors"}
    loaded = EmbeddingIndex.load(folder)
    assert torch.equal(loaded.search(_vectors(), 2)[1], index.search(_vectors(), 2)[1])


def test_damaged_index_is_refused_with_its_folder_and_command(tmp_path):
    index = EmbeddingIndex(3)
    index.add(_vectors())
    folder = index.save(tmp_path / "catalog")
    (folder / "vectors.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="7 bytes") as raised:
        EmbeddingIndex.load(folder, command="ecmm prepare --repair")
    assert str(folder) in str(raised.value) and "`ecmm prepare --repair`" in str(raised.value)
    with pytest.raises(ArtifactError, match="not built"):
        EmbeddingIndex.load(tmp_path / "nowhere")


def test_index_of_the_earlier_layout_still_loads(tmp_path):
    from safetensors.torch import save_file

    from ecmm.artifacts import file_sha256

    save_file({"vectors": _vectors(), "ids": torch.arange(4)}, str(tmp_path / "old.safetensors"))
    card = {"kind": "ecmm.EmbeddingIndex", "dim": 3, "backend": "exact", "size": 4,
            "sha256": file_sha256(tmp_path / "old.safetensors")}
    (tmp_path / "old.json").write_text(json.dumps(card))
    assert EmbeddingIndex.load(tmp_path / "old").ids.tolist() == [0, 1, 2, 3]
    (tmp_path / "old.safetensors").write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="sha256"):
        EmbeddingIndex.load(tmp_path / "old")


def test_bad_input_raises():
    index = EmbeddingIndex(3)
    with pytest.raises(ValueError, match="empty"):
        index.search(torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        index.add(torch.ones(2, 4))
    index.add(torch.ones(2, 3))
    with pytest.raises(ValueError, match="k must be"):
        index.search(torch.ones(1, 3), k=0)
    with pytest.raises(ValueError, match="one id per row"):
        index.add(torch.ones(2, 3), ids=[1])
    with pytest.raises(ArtifactError, match="/nonexistent/index"):
        EmbeddingIndex.load("/nonexistent/index")
