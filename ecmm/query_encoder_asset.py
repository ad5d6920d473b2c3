"""The registry's ``query_encoder`` asset: the search's query side exported to ONNX.

:func:`build_query_encoder` writes two exported encoders (:mod:`ecmm.exported_text`), each with its
tokenizer and checked against torch on probe texts:

- ``clip/``: the CLIP text tower (output ``clip``, ``(B, E)``);
- ``sentence/``: the sentence encoder of the text->text signals (output ``sentence``, ``(B, D)``).
  When that encoder *is* the model's own MiniLM (the offline model, text tower locked), the export
  is :class:`JointQueryTower`: one MiniLM pass gives both ``clip`` and ``sentence``, so a hybrid
  query (both encoders read the same expanded text) runs MiniLM once, as the torch model's memo
  does (:class:`ecmm.exported_text.QueryEncoders`).

A model whose tokenizer cannot be exported (open_clip's) gets a card that says why
(``exported: false``), and its queries run on the torch model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from ecmm.text_side import tower_sentence_encoder

__all__ = ["RECIPE_VERSION", "QUERY_ENCODERS", "build_query_encoder", "QueryTextTower", "SentenceTower",
           "JointQueryTower"]

RECIPE_VERSION = 4  # query_encoder: 3 = two separate encoders; 4 = the sentence export also gives `clip`
QUERY_ENCODERS = ("clip", "sentence")  # subfolders of the asset, one exported encoder each


class QueryTextTower(torch.nn.Module):
    """The CLIP text tower as a module of token tensors (the offline model's MiniLM + projection).

    Calls MiniLM and the projection directly, never the model's memo of MiniLM outputs, so a
    trace records the network, not a remembered answer.

    Shapes:
        input_ids, attention_mask ``(B, L)`` -> ``(B, E)`` L2-normalised.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "project_text") and hasattr(self.model, "text_encoder"):
            return self.model.project_text(self.model.text_encoder(input_ids, attention_mask))
        return self.model.encode_text({"input_ids": input_ids, "attention_mask": attention_mask})


class SentenceTower(torch.nn.Module):
    """A mean-pooling sentence encoder (:class:`ecmm.models.text.TextEncoder`), normalised.

    Shapes:
        input_ids, attention_mask ``(B, L)`` -> ``(B, D)`` L2-normalised.
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.encoder(input_ids, attention_mask), dim=-1)



class JointQueryTower(torch.nn.Module):
    """The offline model's MiniLM run once for both query embeddings.

    Shapes:
        input_ids, attention_mask ``(B, L)`` -> ``(B, E + D)``: the CLIP text embedding (MiniLM +
        projection, as :class:`QueryTextTower`) then the sentence embedding (mean-pooled MiniLM
        normalised, as :class:`SentenceTower`). The first part equals the CLIP tower's only when
        the texts fit the CLIP tokenizer's shorter context (no truncation differs).
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = self.model.text_encoder(input_ids, attention_mask)  # (B, D), one MiniLM pass
        return torch.cat([self.model.project_text(features), torch.nn.functional.normalize(features, dim=-1)], dim=-1)


def build_query_encoder(folder: Path, model: Any, progress: bool = True, *, source: Any = None) -> None:
    """The registry's builder of ``query_encoder``: the search's query encoders exported to ONNX.

    ``folder/clip`` holds the CLIP text tower, ``folder/sentence`` the sentence encoder of the
    text->text signals (the model's own MiniLM when unchanged, exported with the CLIP output too:
    :class:`JointQueryTower`; else the bundled MiniLM), each with its tokenizer, checked against
    the torch encoders on probe texts.

    Args:
        folder: where the asset is written.
        model: the shop's CLIP model.
        progress: print a line on stderr when exporting starts.
        source: the catalog (unused: the encoders do not depend on it; kept for the registry).
    """
    from ecmm.artifacts import write_artifact
    from ecmm.exported_text import export_text_encoder, exportable_tokenizer

    del source
    tokenizer = getattr(getattr(model, "tokenizer", None), "hf_tokenizer", None)
    tower = getattr(model, "text_encoder", None)
    reason = ("" if tokenizer is not None and tower is not None else
              f"{type(model).__name__}'s tokenizer is not a Hugging Face tokenizer") or exportable_tokenizer(tokenizer)
    card: dict[str, Any] = {"asset": "query_encoder", "recipe": {"version": RECIPE_VERSION, "encoders": list(QUERY_ENCODERS)}}
    if reason:
        card.update(exported=False, reason=reason)
        write_artifact(folder, lambda temporary: (temporary / "not_exported.txt").write_text(reason + "\n"), card)
        return
    if progress:
        print(f"exporting the query encoders to ONNX into {folder}", file=sys.stderr)
    joint = tower_sentence_encoder(model) is not None and hasattr(model, "project_text")
    sentence = tower if joint else None
    if sentence is None:
        from ecmm.models.text import load_text_encoder

        sentence = load_text_encoder(device="cpu")
    specs: dict[str, dict] = {}

    def write_files(temporary: Path) -> None:
        was = next(model.parameters()).device
        model.cpu()
        try:
            specs["clip"] = export_text_encoder(QueryTextTower(model), tokenizer, temporary / "clip",
                                                {"clip": int(model.embed_dim)}, int(model.tokenizer.context_length))
            module, outputs = SentenceTower(sentence), {"sentence": int(sentence.embedding_dim)}
            if joint:
                module, outputs = JointQueryTower(model), {"clip": int(model.embed_dim), **outputs}
            specs["sentence"] = export_text_encoder(module, sentence.tokenizer, temporary / "sentence", outputs,
                                                    int(sentence.max_length))
        finally:
            model.to(was)

    write_artifact(folder, write_files, {**card, "exported": True, "specs": specs})
