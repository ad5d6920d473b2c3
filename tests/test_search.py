"""ecmm.search and ecmm.hybrid: text search modes on a tiny fake CLIP model, RRF by hand."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ecmm.hybrid import HybridBlend, evaluate_queries, fit_blend, ranks_of, reciprocal_rank_fusion
from ecmm.search import RESULT_COLUMNS, SEARCH_MODES, CatalogSearch, request_queries, results_to_records

WORDS = ["red", "blue", "backpack", "necktie", "scarf", "warm", "neck", "photo", "a", "of"]


class FakeClip(nn.Module):
    """Bag-of-words text tower; an image's embedding is read from its first pixels."""

    embed_dim = len(WORDS)
    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.scale_parameter = nn.Parameter(torch.zeros(()))

    def tokenizer(self, texts):
        rows = [[float(text.lower().split().count(word)) + 0.01 for word in WORDS] for text in texts]
        return torch.tensor(rows)

    def preprocess(self, images):
        return torch.as_tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2)

    def encode_text(self, tokens, normalize=True):
        return nn.functional.normalize(tokens, dim=-1)

    def encode_image(self, images, normalize=True):
        return nn.functional.normalize(images[:, 0, 0, : self.embed_dim] + 0.01, dim=-1)


CATALOG = pd.DataFrame({
    "sku_id": ["S0", "S1", "S2", "S3"],
    "title": ["Red backpack", "Blue backpack", "Red necktie", "Blue scarf"],
    "product_type": ["backpack", "backpack", "necktie", "scarf"],
    "category": ["bags", "bags", "apparel", "apparel"],
    "colour": ["red", "blue", "red", "blue"],
    "price": [40.0, 20.0, 15.0, 25.0],
    "description": ["A red backpack.", "A blue backpack.", "A red necktie.", "A warm blue scarf for the neck."],
    "split": ["train", "train", "test_colours", "test_products"],
})


def photos() -> np.ndarray:
    """(4, 2, 1, 10, 3) uint8: row r's pixels spell its title's words, a red necktie 'looks' red."""
    images = np.zeros((4, 2, 1, len(WORDS), 3), dtype=np.uint8)
    for row, title in enumerate(CATALOG.title):
        for word in title.lower().split():
            images[row, :, 0, WORDS.index(word), 0] = 1
    images[0, :, 0, WORDS.index("necktie"), 0] = 2  # the dense signal prefers the wrong product ...
    images[2, :, 0, WORDS.index("red"), 0] = 0  # ... and misses the necktie's colour
    return images


@pytest.fixture()
def search():
    model = FakeClip()
    return CatalogSearch.build(model, model.preprocess, model.tokenizer, CATALOG, photos(), device="cpu")


def test_rrf_by_hand():
    fused = reciprocal_rank_fusion({"a": np.array([3.0, 1.0, 2.0]), "b": np.array([np.nan, 5.0, 4.0])},
                                   {"a": 1.0, "b": 2.0}, k=1.0)
    np.testing.assert_allclose(fused, [1 / 2, 1 / 4 + 2 / 2, 1 / 3 + 2 / 3])
    np.testing.assert_array_equal(ranks_of(np.array([0.5, np.nan, 0.9])), [2, np.nan, 1])
    with pytest.raises(ValueError):
        HybridBlend(lexical=-1.0)


def test_modes_rank_and_return_result_columns(search):
    for mode in SEARCH_MODES:
        frame = search.search_text("red necktie", k=2, mode=mode)
        assert list(frame.columns) == list(RESULT_COLUMNS) and len(frame) == 2
    assert search.search_text("red necktie", mode="dense").title[0] == "Red backpack"  # photos mislead
    assert search.search_text("red necktie", mode="lexical").title[0] == "Red necktie"
    assert search.search_text("red necktie").title[0] == "Red necktie"  # default: hybrid
    records = results_to_records(search.search_text("blue", k=1))
    assert set(records[0]) == set(RESULT_COLUMNS)
    with pytest.raises(ValueError, match="mode"):
        search.search_text("red", mode="fuzzy")
    with pytest.raises(ValueError, match="empty"):
        search.search_text("   ")


def test_price_limits_filter_hybrid_results(search):
    assert search.search_text("backpack under 30", k=1).title[0] == "Blue backpack"
    assert search.search_text("backpack over 30", k=1).title[0] == "Red backpack"


def test_understand_reports_constraints_and_nearest_types(search):
    understood = search.understand("blue bakcpack under 30")
    assert understood["colours"] == ["blue"] and understood["product_types"] == ["backpack"]
    assert understood["max_price"] == 30.0 and understood["corrections"] == {"bakcpack": "backpack"}
    assert understood["nearest_product_types"][0]["product_type"] == "backpack"
    assert len(understood["nearest_product_types"]) == 3


def test_text_encoder_parameter_and_image_search(search):
    calls = []

    def encoder(texts):
        calls.append(len(texts))
        return FakeClip().tokenizer(texts)

    other = CatalogSearch(search.model, search.preprocess, search.tokenizer, CATALOG, search.index, "cpu",
                          text_encoder=encoder)
    assert other.search_text("warm neck", k=1).title[0] == "Blue scarf" and calls
    assert search.search_image(photos()[2, 0]).title[0] == "Red necktie"


def test_evaluation_and_blend_fitting(search):
    queries = [{"query": "red necktie", "kind": "plain", "product_types": ["necktie"], "colours": ["red"]},
               {"query": "blue backpack", "kind": "plain", "product_types": ["backpack"], "colours": ["blue"]}]
    table = evaluate_queries(search, queries)
    assert set(table["mode"]) == set(SEARCH_MODES) and set(table["kind"]) == {"plain", "all"}
    hybrid = table[(table["mode"] == "hybrid") & (table["kind"] == "all")].iloc[0]
    assert hybrid["R@1"] == 1.0 and hybrid["MRR"] == 1.0
    blend, mrr = fit_blend(search, queries, grid=(0.0, 1.0))
    assert isinstance(blend, HybridBlend) and mrr == 1.0
    requests = request_queries(CATALOG, split="train", count=5)
    assert len(requests) == 2 and requests[0]["kind"] == "request"


def test_notebook_05_checks_accept_the_solution_and_reject_a_wrong_answer():
    import ecmm.exercises
    from ecmm.exercises.notebook_05 import SOLUTIONS

    for name, (right, wrong) in SOLUTIONS.items():
        assert getattr(ecmm.exercises, name)(right).correct, name
        assert not getattr(ecmm.exercises, name)(wrong).correct, name


def test_build_catalog_index_writes_a_loadable_index(tmp_path):
    from ecmm.artifacts import read_card
    from ecmm.index import EmbeddingIndex
    from ecmm.search_assets import build_catalog_index

    build_catalog_index(tmp_path / "search_index", FakeClip(), progress=False, text_encoder=CountingEncoder())
    card = read_card(tmp_path / "search_index")
    index = EmbeddingIndex.load(tmp_path / "search_index" / "index")
    assert card["asset"] == "search_index" and len(index) == card["data"]["rows"] > 0
    assert card["recipe"]["version"] == 3 and set(card["files"]) >= {"text_side.json", "text_side.safetensors"}


# --- the cached text side and one encoding per query ---------------------------------------------

class TinySource:
    """A catalog source over the four-row catalog above (what build_catalog_index reads)."""

    name, fingerprint = "tiny", "0" * 16

    def __init__(self, catalog=CATALOG):
        self.catalog = catalog

    def table(self):
        return self.catalog.copy()

    def photos(self):
        from ecmm.data.catalogs import ArrayPhotos

        return ArrayPhotos(photos()[:len(self.catalog)])


class CountingEncoder:
    """A bag-of-words sentence encoder that counts its calls and the texts it embeds."""

    def __init__(self):
        self.calls, self.texts = 0, 0

    def __call__(self, texts):
        self.calls, self.texts = self.calls + 1, self.texts + len(texts)
        return FakeClip().tokenizer(texts) * torch.arange(1.0, len(WORDS) + 1)  # another space than CLIP's


class CountingClip(FakeClip):
    """FakeClip counting calls of its text tower."""

    def __init__(self):
        super().__init__()
        self.text_calls = 0

    def encode_text(self, tokens, normalize=True):
        self.text_calls += 1
        return super().encode_text(tokens, normalize)


QUERIES = ["red necktie", "blue bakcpack under 30", "warm neck", "backpack over 30", "scarf"]


def _rankings(search):
    return {(query, mode): search.search_text(query, k=4, mode=mode).sku_id.tolist()
            for query in QUERIES for mode in SEARCH_MODES}


def test_a_cached_text_side_ranks_like_a_recomputed_one_without_encoding_the_catalog(tmp_path):
    from ecmm.search_assets import build_catalog_index
    from ecmm.text_side import TEXT_SIDE_TABLE, TEXT_SIDE_TENSORS

    model, encoder = CountingClip(), CountingEncoder()
    build_catalog_index(tmp_path / "search_index", model, progress=False, source=TinySource(), text_encoder=encoder)
    assert (tmp_path / "search_index" / TEXT_SIDE_TENSORS).is_file()
    assert (tmp_path / "search_index" / TEXT_SIDE_TABLE).is_file()
    recomputed = CatalogSearch.build(model, model.preprocess, model.tokenizer, CATALOG, photos(), device="cpu",
                                     text_encoder=encoder)
    model.text_calls, encoder.calls, encoder.texts = 0, 0, 0
    cached = CatalogSearch.from_folder(tmp_path / "search_index", model, CATALOG, device="cpu", text_encoder=encoder)
    assert cached.cached is not None
    assert model.text_calls == 1 and encoder.texts == 1  # one product type re-embedded to check each encoder
    assert _rankings(cached) == _rankings(recomputed)
    assert cached.understand("warm neck") == recomputed.understand("warm neck")
    for name in ("texts", "type_embeddings", "photos"):
        torch.testing.assert_close(cached.text_side()[name], recomputed.text_side()[name], rtol=0, atol=0)
    clip_only = CatalogSearch.from_folder(tmp_path / "search_index", model, CATALOG, device="cpu")  # saved too
    assert clip_only.cached is not None
    assert _rankings(clip_only) == _rankings(CatalogSearch.build(model, model.preprocess, model.tokenizer, CATALOG,
                                                                 photos(), device="cpu"))


def test_a_text_side_that_does_not_fit_is_computed_again(tmp_path, capsys):
    from ecmm.search_assets import build_catalog_index
    from ecmm.text_side import TEXT_SIDE_TENSORS

    model, encoder = FakeClip(), CountingEncoder()
    build_catalog_index(tmp_path / "index", model, progress=False, source=TinySource(), text_encoder=encoder)
    renamed = CATALOG.assign(title=["Red backpack", "Blue backpack", "Red tie", "Blue scarf"])
    other = CatalogSearch.from_folder(tmp_path / "index", model, renamed, device="cpu", text_encoder=encoder)
    assert other.cached is None and "another catalog" in capsys.readouterr().err
    different = CatalogSearch.from_folder(tmp_path / "index", model, CATALOG, device="cpu",
                                          text_encoder=lambda texts: FakeClip().tokenizer(texts))
    assert "another text encoder" in capsys.readouterr().err
    assert different.search_text("warm neck", k=1).title[0] == "Blue scarf"
    (tmp_path / "index" / TEXT_SIDE_TENSORS).unlink()  # an index folder from before the text side was saved
    from ecmm.index import EmbeddingIndex

    older = tmp_path / "older"
    EmbeddingIndex.load(tmp_path / "index" / "index").save(older / "index")
    reopened = CatalogSearch.from_folder(older, model, CATALOG, device="cpu", text_encoder=encoder)
    assert reopened.cached is None and reopened.search_text("red necktie").title[0] == "Red necktie"


def test_a_hybrid_answer_encodes_the_query_once_per_model():
    model, encoder = CountingClip(), CountingEncoder()
    search = CatalogSearch.build(model, model.preprocess, model.tokenizer, CATALOG, photos(), device="cpu",
                                 text_encoder=encoder)
    search.text_side()
    model.text_calls, encoder.calls = 0, 0
    results, understood = search.answer("blue bakcpack under 30", k=2)
    assert (model.text_calls, encoder.calls) == (1, 1)
    assert results.title.tolist() == search.search_text("blue bakcpack under 30", k=2).title.tolist()
    assert understood == search.understand("blue bakcpack under 30")
    model.text_calls, encoder.calls = 0, 0
    search.search_text("red necktie")
    assert (model.text_calls, encoder.calls) == (1, 1)
    search.search_text("red necktie", mode="lexical")
    assert (model.text_calls, encoder.calls) == (1, 1)  # BM25 needs no model


def test_search_records_batch_several_queries_into_one_call_per_encoder(search):
    modes = ["hybrid", "dense", "lexical", None, "hybrid"]
    expected = [results_to_records(search.search_text(query, k=k, mode=mode))
                for query, k, mode in zip(QUERIES, [1, 2, 3, 4, 2], modes)]
    counting = CountingClip()
    search.model = counting
    assert search.search_records(QUERIES, [1, 2, 3, 4, 2], modes) == expected
    assert counting.text_calls == 2  # text->photo and text->text (the CLIP tower here), not one per query
    with pytest.raises(ValueError, match="empty"):
        search.search_records(["red", " "])


def test_the_offline_towers_minilm_serves_as_the_sentence_encoder_with_one_pass_per_query(tiny_clip, text_encoder):
    from ecmm.search import tower_sentence_encoder

    model, preprocess = tiny_clip
    model.eval()
    tower = tower_sentence_encoder(model)
    texts = ["Red backpack", "a warm blue scarf for the neck", "necktie"]
    torch.testing.assert_close(tower(texts), text_encoder.encode(texts), rtol=0, atol=1e-6)
    passes = []
    model.text_encoder.transformer.register_forward_hook(lambda *arguments: passes.append(1))
    small = np.zeros((4, 2, 16, 16, 3), dtype=np.uint8)
    search = CatalogSearch.build(model, preprocess, model.tokenizer, CATALOG, small, device="cpu", text_encoder=tower)
    search.text_side()
    passes.clear()
    search.search_text("blue bakcpack for the weekend")
    assert len(passes) == 1  # CLIP's text->photo and the text->text signal share one MiniLM pass
    weights = model.text_encoder.transformer.embeddings.word_embeddings.weight.data
    original = weights[0, 0].clone()
    weights[0, 0] += 1.0  # "fine-tuned" text weights
    try:
        assert tower_sentence_encoder(model) is None
    finally:
        weights[0, 0] = original  # the module's shared MiniLM, exactly as it was
    assert tower_sentence_encoder(FakeClip()) is None


def test_int8_query_encoders_share_the_float_catalog_side(tiny_clip, text_encoder):
    from ecmm.export import count_quantized_linear
    from ecmm.export_search import int8_query_search

    model, preprocess = tiny_clip
    small = np.zeros((4, 2, 16, 16, 3), dtype=np.uint8)
    search = CatalogSearch.build(model, preprocess, model.tokenizer, CATALOG, small, device="cpu",
                                 text_encoder=text_encoder.encode)
    quick = int8_query_search(search)
    assert count_quantized_linear(quick.model)[0] > 0 and count_quantized_linear(search.model)[0] == 0
    assert quick.text_side() is search.text_side()  # the catalog side is not recomputed
    frame = quick.search_text("red necktie", k=4)
    assert sorted(frame.sku_id) == sorted(CATALOG.sku_id)
    fp32, int8 = (variant.encode_queries(["red necktie"], "dense")[0].clip[0] for variant in (search, quick))
    assert not np.array_equal(fp32, int8) and float(fp32 @ int8) > 0.9  # near the float embedding, not equal
