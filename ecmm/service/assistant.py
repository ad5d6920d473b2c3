"""The support assistant's intent classifier as a cached artefact: build it once, load it after.

:func:`build_support_classifier` fine-tunes MiniLM with a softmax head on the train split of the
intents, fits a temperature and chooses the rejection threshold on the validation split, and
writes ``model.safetensors`` + ``card.json`` through :func:`ecmm.artifacts.write_artifact`.
:func:`load_support_classifier` reads it back (sizes and sha256 checked by the card); a damaged
folder raises :class:`ecmm.artifacts.ArtifactError`, whose message names the repair command.

:func:`build_support_encoder` exports the cached classifier to ONNX (:mod:`ecmm.exported_text`,
the ``support_encoder`` asset) and :func:`load_exported_classifier` opens it: the same logits under
onnxruntime, so ``ecmm support`` answers without importing torch.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["WEIGHTS_FILE", "build_support_classifier", "load_support_classifier", "calibrate_classifier",
           "ExportedIntentClassifier", "build_support_encoder", "load_exported_classifier"]

WEIGHTS_FILE = "model.safetensors"
SEED = 0  # head initialisation and batch order of the cached classifier


def calibrate_classifier(classifier: Any) -> dict:
    """Fit the temperature, then choose the rejection threshold, both on the validation split.

    Returns:
        ``{"temperature", "threshold", "metrics": {"validation": ...}}``.
    """
    from ecmm.data.intents import load_intents
    from ecmm.service.confidence import apply_temperature, choose_threshold, fit_temperature
    from ecmm.service.intents import encode_intents, evaluate_intents

    frame = load_intents(profile="offline")
    validation = frame[frame.split == "validation"]
    probabilities = classifier.predict_proba(validation["text"].tolist())  # (N, K)
    temperature = fit_temperature(probabilities, encode_intents(validation["intent"], classifier.label_names))
    calibrated = apply_temperature(probabilities, temperature)
    return {"temperature": float(temperature), "threshold": float(choose_threshold(calibrated.max(axis=1))),
            "metrics": {"validation": evaluate_intents(probabilities, validation["intent"], classifier.label_names)}}


def build_support_classifier(folder: str | Path, progress: bool = True) -> Path:
    """Fine-tune the support classifier on the train split, calibrate it, and cache it in ``folder``.

    Notices and progress go to stderr, so a command's stdout stays machine-readable.

    Args:
        folder: the artefact folder (replaced only when the new one is complete).
        progress: show the training progress bar.

    Returns:
        ``folder``.
    """
    from safetensors.torch import save_file

    from ecmm.artifacts import write_artifact
    from ecmm.data.intents import INTENTS, load_intents
    from ecmm.models import load_text_encoder
    from ecmm.service.intents import FineTuneConfig, FineTunedIntentClassifier

    frame = load_intents(profile="offline")
    train = frame[frame.split == "train"]
    config = FineTuneConfig()
    print("Training the support classifier once; it is then cached.", file=sys.stderr, flush=True)
    start = time.perf_counter()
    classifier = FineTunedIntentClassifier(load_text_encoder(), INTENTS, config, seed=SEED)
    classifier.fit(train["text"].tolist(), train["intent"].tolist(), progress=progress)
    classifier.eval()
    seconds = time.perf_counter() - start
    calibration = calibrate_classifier(classifier)
    state = {key: value.detach().contiguous().cpu() for key, value in classifier.state_dict().items()}
    card = {"asset": "support",
            "recipe": {"model": "all-MiniLM-L6-v2 fine-tuned + SoftmaxHead", **asdict(config), "seed": SEED},
            "data": {"intents": "ecmm.data.load_intents(profile='offline')", "train_rows": len(train)},
            "label_names": list(INTENTS), "train_seconds": round(seconds, 1), **calibration}
    write_artifact(folder, lambda temporary: save_file(state, str(temporary / WEIGHTS_FILE)), card)
    print(f"Support classifier trained in {seconds:.0f} s and cached in {folder}.", file=sys.stderr, flush=True)
    return Path(folder)


def load_support_classifier(folder: str | Path, device: Any = None) -> tuple[Any, float]:
    """The cached support classifier and its rejection threshold.

    Args:
        folder: a folder written by :func:`build_support_classifier`.
        device: where the classifier runs; None picks the best available.

    Returns:
        ``(classifier, threshold)``: the fine-tuned classifier (eval mode) wrapped in a
        :class:`~ecmm.service.confidence.TemperatureScaledClassifier`, and the confidence threshold.

    Raises:
        ecmm.artifacts.ArtifactError: the folder is missing, damaged, or from an older kit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ecmm.artifacts import ArtifactError, read_card
    from ecmm.models import load_text_encoder
    from ecmm.service.confidence import TemperatureScaledClassifier
    from ecmm.service.intents import FineTuneConfig, FineTunedIntentClassifier

    folder = Path(folder)
    card = read_card(folder)
    if card.get("legacy") or not {"temperature", "threshold", "label_names", "recipe"} <= set(card):
        raise ArtifactError(folder, "the card is from an older kit (no calibration or file list)")
    fields = set(FineTuneConfig.__dataclass_fields__)
    config = FineTuneConfig(**{key: value for key, value in card["recipe"].items() if key in fields})
    classifier = FineTunedIntentClassifier(load_text_encoder(), card["label_names"], config, device=device)
    try:
        classifier.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device="cpu"))
    except (SafetensorError, RuntimeError, OSError) as error:
        raise ArtifactError(folder, f"{WEIGHTS_FILE} does not load ({error.__class__.__name__})") from None
    classifier.eval()
    return TemperatureScaledClassifier(classifier, card["temperature"]), float(card["threshold"])


class ExportedIntentClassifier:
    """An intent classifier exported to ONNX: ``predict_proba(texts) -> (N, K)`` like the torch one.

    Args:
        encoder: an :class:`ecmm.exported_text.ExportedTextEncoder` whose output ``logits`` is ``(N, K)``.
        label_names: the K intents, in logit order.
    """

    def __init__(self, encoder: Any, label_names: Any) -> None:
        self.encoder, self.label_names = encoder, tuple(label_names)

    def predict_proba(self, texts: Any) -> Any:
        """``N`` texts -> ``(N, K)`` softmax probabilities (float64)."""
        import numpy as np

        logits = self.encoder(list(texts))["logits"].astype(np.float64)  # (N, K)
        logits -= logits.max(axis=1, keepdims=True)
        exponentials = np.exp(logits)
        return exponentials / exponentials.sum(axis=1, keepdims=True)


def build_support_encoder(folder: str | Path, progress: bool = True) -> Path:
    """The registry's builder of ``support_encoder``: the cached classifier exported to ONNX.

    The exported logits are checked against the torch classifier on probe messages
    (:func:`ecmm.exported_text.export_text_encoder`), and the card keeps the calibration.
    """
    from ecmm.artifacts import read_card, write_artifact
    from ecmm.assets import asset_dir
    from ecmm.exported_text import export_text_encoder, exportable_tokenizer

    support = asset_dir("support")
    scaled, threshold = load_support_classifier(support, device="cpu")
    classifier = scaled.classifier
    reason = exportable_tokenizer(classifier.encoder.tokenizer)
    if reason:  # the torch classifier keeps answering
        write_artifact(folder, lambda temporary: (temporary / "not_exported.txt").write_text(reason + "\n"),
                       {"asset": "support_encoder", "recipe": {"version": 1}, "exported": False, "reason": reason})
        return Path(folder)
    if progress:
        print(f"exporting the support classifier to ONNX into {folder}", file=sys.stderr, flush=True)
    specs: dict[str, dict] = {}

    def write_files(temporary: Path) -> None:
        specs["classifier"] = export_text_encoder(classifier, classifier.encoder.tokenizer, temporary / "classifier",
                                                  {"logits": len(classifier.label_names)}, classifier.config.max_length)

    write_artifact(folder, write_files,
                   {"asset": "support_encoder", "recipe": {"version": 1}, "exported": True, "label_names": list(classifier.label_names),
                    "temperature": scaled.temperature, "threshold": threshold, "specs": specs,
                    "support_fingerprint": read_card(support, verify=False).get("files", {}).get(WEIGHTS_FILE)})
    return Path(folder)


def load_exported_classifier(folder: str | Path) -> tuple[Any, float] | None:
    """The exported support classifier (temperature-scaled) and its threshold, from ``support_encoder``;
    None when the classifier could not be exported (its tokenizer has no fast backend).

    Raises:
        ecmm.artifacts.ArtifactError: the folder is missing, damaged, or does not load.
    """
    from ecmm.artifacts import ArtifactError, read_card
    from ecmm.exported_text import ExportedTextEncoder
    from ecmm.service.confidence import TemperatureScaledClassifier

    folder = Path(folder)
    card = read_card(folder)
    if card.get("exported") is False:  # written when the tokenizer has no fast backend
        return None
    try:
        encoder = ExportedTextEncoder.load(folder / "classifier", num_threads=1)
    except (OSError, ValueError) as error:
        raise ArtifactError(folder, f"the exported classifier does not load ({error.__class__.__name__})") from None
    classifier = ExportedIntentClassifier(encoder, card["label_names"])
    return TemperatureScaledClassifier(classifier, card["temperature"]), float(card["threshold"])
