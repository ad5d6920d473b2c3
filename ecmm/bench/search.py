"""``python -m ecmm.bench search [--json PATH] [--catalog CSV] [--model SPEC]``: search quality and throughput.

Runs on the shop's catalog and model (the offline shop with ``ecmm-clip`` by default; ``--catalog``,
``--model`` or ``ECMM_PROFILE=hub`` for another, and it prints which). Measures text->image (query =
the SKU title) and image->image (query = another photo of the SKU) retrieval on ``test_colours``
and ``test_products`` for the zero-shot model, the fine-tuned model (the model's default recipe,
:func:`ecmm.finetune.default_config`: its strong tower locked, e.g. ``text_locked`` for ecmm-clip
with half of every batch replayed from the source domain, ``image_locked`` (LiT) for open_clip; all
training pairs) and the same architecture trained from scratch on shop pairs only; label
efficiency at 5 %, 20 % and 100 % of the training pairs; and training throughput, against the raw
forward+backward rate of the same computation on the same batch size for models whose frozen
image blocks are cached (a ``backbone`` of blocks). It prints and writes numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

SPLITS = ("test_colours", "test_products")
FRACTIONS = (0.05, 0.2, 1.0)
KEYS = ("R@1", "R@5", "R@10", "MRR")


def add_parser(subparsers) -> None:
    """Register ``search``."""
    parser = subparsers.add_parser("search", help="retrieval quality and training throughput of CLIP fine-tuning")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps per run (default: the recipe's)")
    from ecmm.cli import add_shop_options

    add_shop_options(parser)


def _evaluate(model, preprocess, tokenizer, catalog, photos, direction: str) -> dict:
    from ecmm.search import evaluate_retrieval

    return {split: {key: round(value, 4) for key, value in evaluate_retrieval(
        model, preprocess, tokenizer, catalog, photos, split, direction=direction).items() if key in KEYS}
        for split in SPLITS}


def raw_forward_backward_rate(model, preprocess, batch_size: int, trained_blocks: int = 1, repeats: int = 5) -> float:
    """Images/s of forward+backward of :func:`ecmm.train.clip_step` through the trained part, one fixed batch.

    Same computation as a fine-tuning step (the last ``trained_blocks`` CNN blocks on cached maps,
    projections, loss) without sampling, caching or optimiser work.
    """
    from ecmm.clip_training import TrainingView
    from ecmm.train import clip_step

    blocks = list(model.backbone.blocks)
    trained_blocks = max(1, min(trained_blocks, len(blocks)))
    x = torch.randn(batch_size, 3, preprocess.image_size, preprocess.image_size)
    with torch.no_grad():
        maps = torch.nn.Sequential(*blocks[:len(blocks) - trained_blocks]).eval()(x)
    features = torch.randn(batch_size, model.text_projection.in_features)  # cached MiniLM features
    tail = torch.nn.Sequential(*blocks[len(blocks) - trained_blocks:]).train().requires_grad_(True)
    view = TrainingView(model, tail, "features")
    start = time.perf_counter()
    for _ in range(repeats):
        clip_step(view, {"images": maps, "tokens": features}).backward()
    return batch_size * repeats / (time.perf_counter() - start)


def run_benchmark(steps: int | None = None, progress: bool = True, *, source=None, model: str | None = None) -> dict:
    """Run every measurement and return the results dict (shape documented in the module).

    Args:
        steps: fine-tuning steps per run (None: the recipe's).
        progress: show progress bars.
        source: the catalog (None: ``open_catalog()``).
        model: the model spec (None: ``model_spec()``).
    """
    from ecmm.config import get_settings
    from ecmm.data.catalogs import model_spec, open_catalog
    from ecmm.finetune import base_model, default_config, finetune

    source = open_catalog() if source is None else source
    spec = model_spec(model)
    catalog, photos = source.table(), source.photos()
    starts = {"pretrained": base_model(spec, "pretrained")}
    try:
        starts["scratch"] = base_model(spec, "scratch")
    except ValueError as error:  # the model factory has no scratch start for this architecture
        print(f"from-scratch baseline: not run for {spec} ({error})")
    base = starts["pretrained"]
    preprocess, tokenizer = base.preprocess, base.tokenizer
    recipe = default_config(base, quick=get_settings().quick)
    recipe = recipe if steps is None else replace(recipe, steps=steps)
    models = {"zero_shot": base}
    runs: dict[tuple[str, float], dict] = {}
    for fraction in FRACTIONS:
        for init, start in starts.items():
            config = replace(recipe, init=init, label_fraction=fraction)
            model_run, history = finetune(start, catalog, photos, config, progress=progress)
            runs[(init, fraction)] = {"model": model_run, "history": history}
    models["finetuned"] = runs[("pretrained", 1.0)]["model"]
    if "scratch" in starts:
        models["scratch"] = runs[("scratch", 1.0)]["model"]
    results: dict = {split: {} for split in SPLITS}
    results["image_to_image"] = {split: {} for split in SPLITS}
    for name, trained in models.items():
        for split, report in _evaluate(trained, preprocess, tokenizer, catalog, photos, "text").items():
            results[split][name] = report
        for split, report in _evaluate(trained, preprocess, tokenizer, catalog, photos, "image").items():
            results["image_to_image"][split][name] = report
    results["label_efficiency"] = {}
    for fraction in FRACTIONS:
        entry = {}
        for init in starts:
            report = _evaluate(runs[(init, fraction)]["model"], preprocess, tokenizer, catalog, photos, "text")
            entry[init] = {"R@10": report["test_colours"]["R@10"], "test_products_R@10": report["test_products"]["R@10"]}
        results["label_efficiency"][str(fraction)] = entry
    history = runs[("pretrained", 1.0)]["history"]
    raw_rate = None
    if hasattr(models["finetuned"], "backbone"):
        raw_rate = round(raw_forward_backward_rate(models["finetuned"], preprocess, recipe.batch_size,
                                                   recipe.image_blocks), 1)
    else:
        print(f"raw forward+backward rate: not measured for {spec} (it applies to a model whose frozen image "
              "blocks are cached, a backbone of blocks)")
    results["throughput"] = {
        "train_images_per_s": round(history["images_per_second"][0], 1),
        "raw_fwd_bwd_images_per_s": raw_rate,
        "batch_size": recipe.batch_size,
        "threads": torch.get_num_threads(),
    }
    results["recipe"] = {"steps": recipe.steps, "batch_size": recipe.batch_size, "mode": recipe.mode,
                         "image_blocks": recipe.image_blocks, "replay_fraction": recipe.replay_fraction,
                         "image_learning_rate": recipe.image_learning_rate}
    results["run"] = {"catalog": source.describe(), "model": spec}
    return results


def format_table(results: dict) -> str:
    """The text->image and image->image tables as text."""
    lines = []
    for title, block in (("text->image", results), ("image->image", results["image_to_image"])):
        lines.append(f"{title:<14}{'split':<15}{'model':<11}" + "".join(f"{key:>8}" for key in KEYS))
        for split in SPLITS:
            for name, report in block[split].items():
                lines.append(f"{'':<14}{split:<15}{name:<11}" + "".join(f"{report[key]:>8.3f}" for key in KEYS))
    lines.append("label efficiency (test_colours R@10): " + ", ".join(
        f"{fraction}: " + " / ".join(f"{init} {report['R@10']:.3f}" for init, report in entry.items())
        for fraction, entry in results["label_efficiency"].items()))
    lines.append(f"throughput: {results['throughput']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run, print the table, optionally write JSON."""
    start = time.perf_counter()
    results = run_benchmark(steps=args.steps)
    print(f"catalog: {results['run']['catalog']}; model: {results['run']['model']}")
    results["seconds"] = round(time.perf_counter() - start, 1)
    print(format_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0
