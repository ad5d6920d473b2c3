"""Text encoders exported to ONNX: answers in milliseconds, without importing torch.

A command that reads one query (``ecmm search "red backpack"``, ``ecmm support "..."``) spends
most of its time importing torch and transformers and loading weights, not computing. Exported
once, the same network runs under onnxruntime, with the tokenizer read by the ``tokenizers``
library from its ``tokenizer.json``:

- :func:`export_text_encoder` writes ``text_encoder.onnx``, ``tokenizer.json`` and
  ``text_encoder.json`` (how to tokenise, what the outputs are) into a folder, after checking on
  probe texts that the exported tokens equal the original tokenizer's and the outputs agree
  within :data:`TOLERANCE`;
- :class:`ExportedTextEncoder` loads that folder and maps texts to named float32 arrays.

Only a tokenizer with a fast (Rust) backend can be exported (the offline model's MiniLM, any
Hugging Face fast tokenizer); :func:`exportable_tokenizer` says why another one cannot, and the
caller keeps the torch model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ecmm.onnx_runtime import onnx_session, onnxruntime_installed

__all__ = ["MODEL_FILE", "TOKENIZER_FILE", "SPEC_FILE", "TOLERANCE", "PROBE_TEXTS", "exportable_tokenizer",
           "export_text_encoder", "ExportedTextEncoder", "QueryEncoders", "onnxruntime_installed"]

MODEL_FILE = "text_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
SPEC_FILE = "text_encoder.json"
TOLERANCE = 1e-4  # largest |torch - onnxruntime| accepted on the probe texts
INPUT_NAMES = ("input_ids", "attention_mask")
PROBE_TEXTS = ("red backpack", "something to keep my neck warm in winter", "wher is my order EC123456?",
               "a", "Blue running shoes under 50 euros, size 42, for my daughter's first marathon ’")


def exportable_tokenizer(tokenizer: Any) -> str:
    """Why ``tokenizer`` cannot be saved as a ``tokenizer.json`` ("" when it can)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "to_str"):
        return f"{type(tokenizer).__name__} has no fast (Rust) tokenizer to save"
    if getattr(tokenizer, "pad_token_id", None) is None:
        return f"{type(tokenizer).__name__} has no padding token"
    return ""


def export_text_encoder(module: Any, tokenizer: Any, folder: str | Path, outputs: Mapping[str, int],
                        max_length: int, probe_texts: Sequence[str] = PROBE_TEXTS) -> dict:
    """Export ``module(input_ids, attention_mask) -> (B, F)`` and its tokenizer into ``folder``.

    Args:
        module: a torch module (eval mode is set) whose output concatenates the named outputs.
        tokenizer: the Hugging Face fast tokenizer the module was trained with.
        folder: where the three files go (created).
        outputs: ``{name: width}`` in output order, e.g. ``{"clip": 128, "sentence": 384}``; widths sum to F.
        max_length: tokens per text after truncation, as the module is used.
        probe_texts: texts on which tokens and outputs are compared.

    Returns:
        The spec written to ``text_encoder.json`` (with ``max_abs_difference`` on the probes).

    Raises:
        ValueError: the tokenizer cannot be exported, or the exported model disagrees with ``module``.
    """
    import torch

    from ecmm.export import export_onnx

    reason = exportable_tokenizer(tokenizer)
    if reason:
        raise ValueError(f"the text encoder cannot be exported: {reason}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(folder / TOKENIZER_FILE))
    spec = {"inputs": list(INPUT_NAMES), "outputs": {name: int(width) for name, width in outputs.items()},
            "max_length": int(max_length), "pad_token": str(tokenizer.pad_token),
            "pad_token_id": int(tokenizer.pad_token_id)}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    reference_tokens = tokenizer(list(probe_texts), padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt")
    inputs = tuple(reference_tokens[name].to(torch.int64) for name in INPUT_NAMES)
    module = module.eval().cpu()
    with torch.no_grad():
        reference = module(*inputs).float().numpy()  # (B, F)
    if reference.shape[1] != sum(spec["outputs"].values()):
        raise ValueError(f"the module gives {reference.shape[1]} features; outputs {spec['outputs']} add up to "
                         f"{sum(spec['outputs'].values())}")
    export_onnx(module, inputs, folder / MODEL_FILE, input_names=INPUT_NAMES, output_name="features")
    exported = ExportedTextEncoder.load(folder)
    tokens = exported.tokenize(probe_texts)
    for name in INPUT_NAMES:
        if not np.array_equal(tokens[name], reference_tokens[name].numpy()):
            raise ValueError(f"the saved tokenizer gives other {name} than the original on the probe texts")
    difference = float(np.abs(exported.features(probe_texts) - reference).max())
    if not difference <= TOLERANCE:
        raise ValueError(f"the exported encoder differs from the torch one by {difference:.2e} (> {TOLERANCE})")
    spec["max_abs_difference"] = difference
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return spec


class ExportedTextEncoder:
    """An exported text encoder: texts -> named float32 arrays, with onnxruntime and tokenizers only.

    Args:
        session: an onnxruntime ``InferenceSession`` of ``text_encoder.onnx``.
        tokenizer: a ``tokenizers.Tokenizer`` with truncation and padding set.
        spec: the folder's ``text_encoder.json``.
    """

    def __init__(self, session: Any, tokenizer: Any, spec: Mapping[str, Any]) -> None:
        self.session, self.tokenizer, self.spec = session, tokenizer, dict(spec)
        self.outputs: dict[str, int] = dict(spec["outputs"])

    @classmethod
    def load(cls, folder: str | Path, num_threads: int | None = None) -> "ExportedTextEncoder":
        """Open an exported folder (files as :func:`export_text_encoder` writes them).

        Raises:
            FileNotFoundError: a file is missing. ValueError: the spec is not one this kit writes.
        """
        from tokenizers import Tokenizer

        folder = Path(folder)
        for name in (MODEL_FILE, TOKENIZER_FILE, SPEC_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing")
        spec = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        if not isinstance(spec.get("outputs"), dict) or list(spec.get("inputs", ())) != list(INPUT_NAMES):
            raise ValueError(f"{folder / SPEC_FILE} does not describe an exported text encoder")
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        tokenizer.enable_truncation(int(spec["max_length"]))
        tokenizer.enable_padding(pad_id=int(spec["pad_token_id"]), pad_token=str(spec["pad_token"]))
        session = onnx_session(folder / MODEL_FILE, num_threads)
        return cls(session, tokenizer, spec)

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``B`` texts -> ``{"input_ids", "attention_mask"}``, each ``(B, T)`` int64 (T = longest, capped)."""
        encodings = self.tokenizer.encode_batch([str(text) for text in texts])
        return {"input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64)}

    def features(self, texts: Sequence[str], tokens: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """``B`` texts (or their ``tokens``) -> ``(B, F)`` float32: every output, concatenated."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.empty((0, sum(self.outputs.values())), dtype=np.float32)
        tokens = self.tokenize(texts) if tokens is None else tokens
        return self.session.run(None, dict(tokens))[0].astype(np.float32, copy=False)

    def __call__(self, texts: Sequence[str], tokens: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``B`` texts -> ``{output name: (B, width) float32}`` (as the torch module computes them)."""
        features, start, named = self.features(texts, tokens), 0, {}
        for name, width in self.outputs.items():
            named[name] = features[:, start:start + width]
            start += width
        return named


class QueryEncoders(Mapping):
    """A search's exported query encoders: ``{"clip": texts -> (B, E), "sentence": texts -> (B, D)}``.

    When the ``sentence`` export also gives ``clip`` (the offline model's MiniLM run once for both:
    :class:`ecmm.query_encoder_asset.JointQueryTower`), the two embeddings of the same texts come
    from one pass: the last texts' outputs are kept, and the ``clip`` output of the joint export is
    used only when no text is longer than the CLIP tokenizer's context (so its tokens are the same).

    Args:
        clip: the exported CLIP text tower (output ``clip``).
        sentence: the exported sentence encoder (output ``sentence``, and maybe ``clip``).
    """

    def __init__(self, clip: ExportedTextEncoder, sentence: ExportedTextEncoder) -> None:
        self.clip, self.sentence = clip, sentence
        self.joint = "clip" in sentence.outputs
        self.clip_length = int(clip.spec["max_length"])
        self.last: tuple[tuple[str, ...], dict[str, np.ndarray]] | None = None  # texts -> outputs of one pass

    def encode(self, name: str, texts: Sequence[str]) -> np.ndarray:
        """``B`` texts -> ``(B, width)`` float32 embeddings of encoder ``name`` (``"clip"`` or ``"sentence"``)."""
        key = (texts,) if isinstance(texts, str) else tuple(str(text) for text in texts)
        last = self.last
        if last is not None and last[0] == key and name in last[1]:
            return last[1][name]
        if not self.joint:
            return (self.clip if name == "clip" else self.sentence)(key)[name]
        tokens = self.sentence.tokenize(key) if key else None
        fits = tokens is None or tokens["input_ids"].shape[1] <= self.clip_length  # CLIP would see the same tokens
        if name == "clip" and not fits:
            return self.clip(key)["clip"]  # a text the CLIP tokenizer truncates: its own tokens
        outputs = self.sentence(key, tokens)
        if not fits:
            outputs.pop("clip")
        self.last = (key, outputs)
        return outputs[name]

    def forget(self) -> None:
        """Drop the kept outputs (a benchmark that times every pass)."""
        self.last = None

    def __getitem__(self, name: str) -> Any:
        if name not in ("clip", "sentence"):
            raise KeyError(name)
        return lambda texts: self.encode(name, texts)

    def __iter__(self) -> Iterator[str]:
        return iter(("clip", "sentence"))

    def __len__(self) -> int:
        return 2
