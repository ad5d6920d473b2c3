"""Two open challenges measured: what the models cost, and how much labelled data they need.

Cost: parameters, FLOPs, CPU latency, peak memory, training time.

Measured on this machine for every model of the kit (:func:`measure_model`), and, for the hub
models that this machine cannot download, the figures their authors PUBLISHED
(:data:`PUBLISHED_HUB_MODELS`), each with its source. The two kinds sit in one table
(:func:`compute_table`) with a ``figures`` column that says which is which.

Conventions:

- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as
  2 FLOPs, for ONE input (batch size 1). torchvision's model pages list multiply-adds under the
  name "GFLOPS"; open_clip's ``model_profile.csv`` lists 2 × multiply-adds (as here).
- Latency is the median wall time of one forward pass at batch size 1 under ``torch.no_grad``,
  on one CPU thread.
- Peak memory is the parameters' bytes plus the peak of the bytes the forward pass allocates
  (tracked with ``torch.profiler`` memory events).

Scarce data: :func:`recorded_label_efficiency` collects the label-efficiency results that
notebooks 02 and 04 recorded with ``record_metrics``; :func:`intent_label_efficiency` recomputes a
small intent few-shot curve (notebook 07 records only its gap at 5 shots).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
import torch
from torch import nn

__all__ = ["PublishedFigures", "PUBLISHED_HUB_MODELS", "count_flops", "cpu_latency",
           "peak_forward_memory", "measure_model", "asset_training_seconds", "compute_table",
           "recorded_label_efficiency", "intent_label_efficiency"]

COLUMNS = ("model", "role", "figures", "parameters_millions", "gflops_per_input", "latency_ms",
           "peak_memory_mb", "training_seconds", "source")


@dataclass(frozen=True)
class PublishedFigures:
    """A hub model's published size and cost (not measured by the kit)."""

    name: str  # model name as the hub profile uses it
    role: str  # what it replaces in the kit
    parameters_millions: float  # published parameter count, millions
    gflops_per_input: float  # published GFLOPs for one input, converted to 2 FLOPs per multiply-add
    flop_note: str  # what the published number counted and the input size
    source: str  # where the figures were published


PUBLISHED_HUB_MODELS: tuple[PublishedFigures, ...] = (
    PublishedFigures(
        "ViT-B-32 (open_clip, laion2b_s34b_b79k)", "CLIP model (hub profile)", 151.28, 14.78,
        "image 8.82 + text 5.96 GFLOPs at 224 px / 77 tokens, as listed (2 FLOPs per multiply-add)",
        "open_clip docs/model_profile.csv (github.com/mlfoundations/open_clip)"),
    PublishedFigures(
        "resnet18 (ImageNet-1k)", "image backbone (hub profile)", 11.69, 2 * 1.81,
        "torchvision lists 1.81 GFLOPS (multiply-adds) at 224 px; doubled here",
        "pytorch.org/vision/stable/models/generated/torchvision.models.resnet18.html"),
    PublishedFigures(
        "convnext_tiny (ImageNet-1k)", "image backbone (hub profile)", 28.59, 2 * 4.46,
        "torchvision lists 4.46 GFLOPS (multiply-adds) at 224 px; doubled here",
        "pytorch.org/vision/stable/models/generated/torchvision.models.convnext_tiny.html"),
)


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs of one call of ``run`` (2 per multiply-add), counted by ``FlopCounterMode``.

    Args:
        run: a zero-argument callable doing one forward pass, e.g. ``lambda: model(x)``.

    Returns:
        Total FLOPs as an int.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        run()
    return int(counter.get_total_flops())


def cpu_latency(run: Callable[[], Any], repeats: int = 20, warmup: int = 3, threads: int | None = 1) -> float:
    """Median wall time of ``run()`` in seconds, under ``torch.no_grad``.

    Args:
        run: a zero-argument callable doing one forward pass.
        repeats: timed calls (the median is robust to a busy machine).
        warmup: untimed calls first (allocator and kernel caches).
        threads: torch threads while timing (default 1: one server core per request; on a busy
            machine, batch-1 passes on several threads mostly wait for each other); None keeps
            the current setting.

    Returns:
        Median seconds per call.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got {repeats} and {warmup}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        return _median_time(run, repeats, warmup)
    finally:
        torch.set_num_threads(previous)


def _median_time(run: Callable[[], Any], repeats: int, warmup: int) -> float:
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            run()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_forward_memory(run: Callable[[], Any]) -> int:
    """Peak bytes allocated on the CPU during one call of ``run()`` (activations, not weights).

    Memory events of ``torch.profiler`` are replayed in time order (allocations positive, frees
    negative) and the running total's maximum is returned.

    Args:
        run: a zero-argument callable doing one forward pass.

    Returns:
        Peak allocated bytes (0 if nothing was allocated).
    """
    from torch.profiler import ProfilerActivity, profile

    # Kineto (the profiler's C++ side) logs "profiler_start/stop" lines to the process's stderr,
    # which notebooks would show as noise; level 6 keeps it quiet unless the user set a level.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        result = run()
        del result
    current = peak = 0
    for event in sorted(profiler.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)


def measure_model(
    name: str,
    module: nn.Module,
    run: Callable[[], Any],
    role: str = "",
    training_seconds: float | None = None,
    repeats: int = 20,
) -> dict[str, Any]:
    """Measure one model of the kit on this machine.

    Args:
        name: row label.
        module: the model (its parameters are counted; it is put in eval mode).
        run: zero-argument callable doing one forward pass on ONE input (batch size 1).
        role: what the model does in the kit.
        training_seconds: time spent training it (e.g. from its asset card), if known.
        repeats: timed calls for the latency median.

    Returns:
        A dict with the :data:`COLUMNS` keys; ``figures`` is ``"measured"``.
    """
    module.eval()
    parameters = sum(p.numel() for p in module.parameters())
    parameter_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    return {
        "model": name,
        "role": role,
        "figures": "measured",
        "parameters_millions": parameters / 1e6,
        "gflops_per_input": count_flops(run) / 1e9,
        "latency_ms": 1e3 * cpu_latency(run, repeats=repeats),
        "peak_memory_mb": (parameter_bytes + peak_forward_memory(run)) / 2**20,
        "training_seconds": training_seconds,
        "source": "this machine",
    }


def _find_seconds(card: Any) -> float | None:
    """First value under a key that names a training time, searched depth-first."""
    if isinstance(card, Mapping):
        for key in ("train_seconds", "training_seconds", "seconds", "wall_seconds", "pretrain_seconds"):
            value = card.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        for value in card.values():
            found = _find_seconds(value)
            if found is not None:
                return found
    return None


def asset_training_seconds(home: str | Path | None = None) -> dict[str, float]:
    """Training times recorded in the asset cards ``ECMM_HOME/assets/*/card.json``.

    Args:
        home: the cache root; None uses the settings (``ECMM_HOME``).

    Returns:
        ``{asset folder name: seconds}`` for every card that records a time.
    """
    if home is None:
        from ecmm.config import get_settings

        home = get_settings().home
    times = {}
    for card_path in sorted(Path(home).glob("assets/*/card.json")):
        try:
            seconds = _find_seconds(json.loads(card_path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
        if seconds is not None:
            times[card_path.parent.name] = seconds
    return times


def compute_table(measured: Iterable[Mapping[str, Any]],
                  published: Iterable[PublishedFigures] = PUBLISHED_HUB_MODELS) -> pd.DataFrame:
    """One table: the kit's measured models, then the hub models' published figures.

    Args:
        measured: rows from :func:`measure_model`.
        published: hub models' published figures.

    Returns:
        DataFrame with :data:`COLUMNS`; published rows have ``figures == "PUBLISHED"`` and no
        latency, memory or training time (they were not run here).
    """
    rows = [dict(row) for row in measured]
    for figures in published:
        row = asdict(figures)
        rows.append({
            "model": row["name"], "role": row["role"], "figures": "PUBLISHED",
            "parameters_millions": row["parameters_millions"], "gflops_per_input": row["gflops_per_input"],
            "latency_ms": None, "peak_memory_mb": None, "training_seconds": None,
            "source": f"{row['source']} — {row['flop_note']}",
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _recorded(name: str, settings: Any) -> tuple[dict[str, float], str] | None:
    """A notebook's recorded metrics of this run (profile, catalog, model), preferring this mode."""
    from ecmm.config import run_name

    modes = ("quick", "full") if settings.quick else ("full", "quick")
    for mode in modes:
        path = settings.home / "metrics" / f"{name}.{run_name(settings)}.{mode}.json"
        if path.is_file():
            return json.loads(path.read_text())["metrics"], mode
    return None


def recorded_label_efficiency(settings: Any = None) -> pd.DataFrame:
    """Label-efficiency results recorded by notebooks 02 (image classification) and 04 (image search).

    Args:
        settings: resolved :class:`ecmm.config.Settings`; None reads the environment.

    Returns:
        DataFrame ``task, method, labels, score, metric, mode`` (empty when nothing is recorded;
        ``mode`` says whether the numbers come from a quick or a full run).
    """
    from ecmm.config import get_settings

    settings = settings or get_settings()
    rows = []
    found = _recorded("02_transfer_learning", settings)
    if found:
        metrics, mode = found
        for key, value in metrics.items():
            for prefix, method in (("pretrained f + linear probe @", "pretrained"), ("scratch @", "scratch")):
                if key.startswith(prefix) and key[len(prefix):].isdigit():
                    rows.append(("image classification (02)", method, int(key[len(prefix):]), value, "accuracy", mode))
    found = _recorded("04_finetuning_for_image_search", settings)
    if found:
        metrics, mode = found
        for key, value in metrics.items():
            parts = key.split("_")
            if len(parts) == 5 and parts[0] in ("pretrained", "scratch") and parts[1:3] == ["test", "colours"]:
                rows.append(("image search, test_colours (04)", parts[0], float(parts[3]), value, "Recall@10", mode))
    return pd.DataFrame(rows, columns=["task", "method", "labels", "score", "metric", "mode"])


def intent_label_efficiency(shots: Iterable[int] = (1, 5, 10), seeds: Iterable[int] = (0,),
                            max_test: int | None = None, device: str | torch.device | None = None,
                            progress: bool = True, intents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Few-shot intent accuracy: frozen MiniLM + softmax head (transfer) vs TF-IDF + logistic regression.

    Args:
        shots: labelled messages per intent.
        seeds: few-shot draws to average.
        max_test: keep at most this many test messages (seeded), for quick runs; None keeps all.
        device: where MiniLM runs; None picks the best available.
        progress: show a progress bar.
        intents: the labelled messages (columns ``text, intent, split``, as
            :func:`ecmm.data.load_intents` returns them), e.g. ``load_intents(profile="offline")``
            for the hand-written messages without network; None loads the active profile's.

    Returns:
        DataFrame ``task, method, labels, score, metric, mode`` (mode ``"recomputed"``).
    """
    from ecmm.progress import progress_bar

    from ecmm.data import INTENTS, load_intents
    from ecmm.models import load_text_encoder
    from ecmm.service.intents import (FrozenIntentClassifier, TfidfIntentClassifier, evaluate_intents,
                                      sample_few_shot)

    if intents is None:
        intents = load_intents()
    missing = {"text", "intent", "split"} - set(intents.columns)
    if missing:
        raise ValueError(f"intents needs the columns text, intent and split; missing {sorted(missing)}")
    train, test = intents[intents["split"] == "train"], intents[intents["split"] == "test"]
    if max_test is not None and len(test) > max_test:
        test = test.sample(max_test, random_state=0)
    encoder = load_text_encoder(device=device)
    test_embeddings = encoder.encode(list(test["text"]))
    rows = []
    for shot in progress_bar(list(shots), desc="few-shot intents", disable=not progress):
        for seed in seeds:
            sample = sample_few_shot(train, shot, seed=seed)
            frozen = FrozenIntentClassifier(encoder, INTENTS, seed=seed, device=device)
            frozen.fit_embeddings(encoder.encode(list(sample["text"])), list(sample["intent"]))
            with warnings.catch_warnings():  # 1 shot per intent: sklearn warns that classes outnumber half the samples
                warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
                tfidf = TfidfIntentClassifier(INTENTS).fit(list(sample["text"]), list(sample["intent"]))
            for method, probabilities in (("pretrained MiniLM (frozen)", frozen.predict_proba_embeddings(test_embeddings)),
                                          ("TF-IDF (no transfer)", tfidf.predict_proba(list(test["text"])))):
                score = evaluate_intents(probabilities, list(test["intent"]), INTENTS)["accuracy"]
                rows.append(("intent classification (06)", method, shot, score, "accuracy", "recomputed"))
    return pd.DataFrame(rows, columns=["task", "method", "labels", "score", "metric", "mode"])
