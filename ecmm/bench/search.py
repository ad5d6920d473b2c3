"""``python -m ecmm.bench search [--json PATH]``: product-search quality and training throughput.

Measures text->image (query = the SKU title) and image->image (query = another photo of the SKU)
retrieval on ``test_colours`` and ``test_products`` for the zero-shot model, the fine-tuned model
(the default :class:`~ecmm.finetune.FinetuneConfig`, ``text_locked``: MiniLM locked, CNN + projections trained,
half of every batch replayed from the source domain; all training pairs) and the same model
trained from scratch on shop pairs only; label efficiency at 5 %, 20 %
and 100 % of the training pairs; and training throughput against the raw forward+backward rate
of the same computation on the same batch size.  It prints and writes numbers; it asserts nothing.
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


def run_benchmark(steps: int | None = None, progress: bool = True) -> dict:
    """Run every measurement and return the results dict (shape documented in the module)."""
    from ecmm.data import load_catalog, load_photos
    from ecmm.finetune import FinetuneConfig, finetune
    from ecmm.models.clip import create_clip_model

    catalog, photos = load_catalog("offline"), load_photos("offline")
    base, preprocess, tokenizer = create_clip_model("ecmm-clip", pretrained=True)
    scratch_base, _, _ = create_clip_model("ecmm-clip", pretrained="scratch")
    recipe = FinetuneConfig() if steps is None else replace(FinetuneConfig(), steps=steps)
    models = {"zero_shot": base}
    runs: dict[tuple[str, float], dict] = {}
    for fraction in FRACTIONS:
        for init, start in (("pretrained", base), ("scratch", scratch_base)):
            config = replace(recipe, init=init, label_fraction=fraction)
            model, history = finetune(start, catalog, photos, config, progress=progress)
            runs[(init, fraction)] = {"model": model, "history": history}
    models["finetuned"] = runs[("pretrained", 1.0)]["model"]
    models["scratch"] = runs[("scratch", 1.0)]["model"]
    results: dict = {split: {} for split in SPLITS}
    results["image_to_image"] = {split: {} for split in SPLITS}
    for name, model in models.items():
        for split, report in _evaluate(model, preprocess, tokenizer, catalog, photos, "text").items():
            results[split][name] = report
        for split, report in _evaluate(model, preprocess, tokenizer, catalog, photos, "image").items():
            results["image_to_image"][split][name] = report
    results["label_efficiency"] = {}
    for fraction in FRACTIONS:
        entry = {}
        for init in ("pretrained", "scratch"):
            report = _evaluate(runs[(init, fraction)]["model"], preprocess, tokenizer, catalog, photos, "text")
            entry[init] = {"R@10": report["test_colours"]["R@10"], "test_products_R@10": report["test_products"]["R@10"]}
        results["label_efficiency"][str(fraction)] = entry
    lit = runs[("pretrained", 1.0)]["history"]
    results["throughput"] = {
        "train_images_per_s": round(lit["images_per_second"][0], 1),
        "raw_fwd_bwd_images_per_s": round(raw_forward_backward_rate(models["finetuned"], preprocess, recipe.batch_size,
                                                                    recipe.image_blocks), 1),
        "batch_size": recipe.batch_size,
        "threads": torch.get_num_threads(),
    }
    results["recipe"] = {"steps": recipe.steps, "batch_size": recipe.batch_size, "mode": recipe.mode,
                         "image_blocks": recipe.image_blocks, "replay_fraction": recipe.replay_fraction,
                         "image_learning_rate": recipe.image_learning_rate}
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
        f"{fraction}: pretrained {entry['pretrained']['R@10']:.3f} / scratch {entry['scratch']['R@10']:.3f}"
        for fraction, entry in results["label_efficiency"].items()))
    lines.append(f"throughput: {results['throughput']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run, print the table, optionally write JSON."""
    start = time.perf_counter()
    results = run_benchmark(steps=args.steps)
    results["seconds"] = round(time.perf_counter() - start, 1)
    print(format_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0
