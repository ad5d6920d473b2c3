"""Peak memory of fine-tuning and indexing a hub-format catalog: does it follow the batch or the catalog?

Usage: python data_scripts/measure_memory.py [--sizes 2000 20000] [--steps 20] [--image-size 224]

Writes synthetic parquet shards in the hub data set's exact schema (``tests/catalog_fixtures.py``),
a small open_clip ViT (2 layers, width 64, random weights, ``--image-size`` pixels: 224 like the
real open_clip models) as a config JSON + safetensors, then, in a fresh Python process per shard:

1. opens the shard with ``HubSource.open(data_files=shard)``;
2. fine-tunes the model on it (:func:`ecmm.finetune.finetune`, the model's default recipe, LiT,
   with ``--steps`` steps);
3. embeds photo 0 of every product (:func:`ecmm.models.clip.embed_images` over ``photos.view(0)``),
   the indexing path.

After each stage it prints the process's peak resident memory (``ru_maxrss``) and the peak of its
anonymous memory (``RssAnon``, sampled every 20 ms: what the process itself allocated, without the
memory-mapped Arrow file whose pages the kernel can drop), then the ratio between the largest and
the smallest shard. Memory that follows the catalog would grow with the row count; memory that
follows the batch stays put.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_open_clip(folder: Path, image_size: int) -> str:
    """Write a small random open_clip ViT (config JSON + safetensors); returns its model spec."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    name = f"ecmm-memory-vit-{image_size}"
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": image_size, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    config_path = folder / f"{name}.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(config_path)
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    checkpoint = folder / f"{name}.safetensors"
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(checkpoint))
    return f"{config_path}:{checkpoint}"


def write_shard(path: Path, rows: int) -> Path:
    """A parquet shard of ``rows`` products in the hub's schema (the tests' generator)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from catalog_fixtures import write_hub_shard

    return write_hub_shard(path, rows=rows, seed=0)


class AnonymousPeak:
    """Samples ``RssAnon`` of this process every ``interval`` seconds; ``peak`` is the largest seen (MiB)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def current() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.current())


def peak_rss() -> float:
    """Peak resident memory of this process so far (MiB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(shard: Path, spec: str, steps: int, batch_size: int) -> dict:
    """One measurement in this (fresh) process: open, fine-tune, index."""
    from dataclasses import replace

    import torch

    from ecmm.data.hub import HubSource
    from ecmm.finetune import default_config, finetune
    from ecmm.models.clip import embed_images, open_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sampler = AnonymousPeak()
    result: dict = {"start_mib": peak_rss()}
    model = open_model(spec, device="cpu")[0]
    source = HubSource.open(data_files=shard)
    table, photos = source.table(), source.photos()
    result.update(rows=len(table), open_mib=peak_rss(), open_anonymous_mib=sampler.peak)
    config = replace(default_config(model, quick=True), steps=steps, batch_size=batch_size, warmup_steps=2)
    started = time.perf_counter()
    _, history = finetune(model, table, photos, config, device="cpu", progress=False)
    result.update(finetune_mib=peak_rss(), finetune_anonymous_mib=sampler.peak,
                  finetune_seconds=time.perf_counter() - started, streamed=history["photos_streamed"][0],
                  final_loss=history["step_loss"][-1])
    started = time.perf_counter()
    embeddings = embed_images(model, photos.view(0), device="cpu")
    result.update(index_mib=peak_rss(), index_anonymous_mib=sampler.stop(), index_seconds=time.perf_counter() - started,
                  embeddings=list(embeddings.shape))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="rows of the synthetic shards")
    parser.add_argument("--steps", type=int, default=20, help="fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per fine-tuning step")
    parser.add_argument("--image-size", type=int, default=224, help="input side of the model (real open_clip: 224)")
    parser.add_argument("--folder", type=Path, default=None, help="where shards and model go (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", nargs=2, metavar=("SHARD", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.steps, args.batch_size)))
        return
    folder = args.folder or Path(tempfile.mkdtemp(prefix="ecmm-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    spec = tiny_open_clip(folder, args.image_size)
    environment = {**os.environ, "ECMM_HOME": str(folder / "home"), "ECMM_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
                   "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results = []
    for rows in args.sizes:
        shard = write_shard(folder / f"shard_{rows}.parquet", rows)
        command = [sys.executable, str(Path(__file__).resolve()), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--child", str(shard), spec]
        output = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        if output.returncode != 0:
            raise SystemExit(f"the {rows:,}-row run failed:\n{output.stderr[-3000:]}")
        result = json.loads(output.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{result['rows']:>6,} products ({shard.stat().st_size / 2**20:.0f} MiB shard): peak RSS after "
              f"open {result['open_mib']:.0f} MiB, fine-tuning {result['finetune_mib']:.0f} MiB "
              f"({args.steps} steps, {result['finetune_seconds']:.0f} s, photos streamed: {bool(result['streamed'])}), "
              f"indexing {result['index_mib']:.0f} MiB ({result['index_seconds']:.0f} s); peak anonymous "
              f"{result['finetune_anonymous_mib']:.0f} / {result['index_anonymous_mib']:.0f} MiB", flush=True)
    small, large = results[0], results[-1]
    print(f"ratio {large['rows']:,} / {small['rows']:,} products ({large['rows'] / small['rows']:.0f}x the rows): "
          f"peak RSS fine-tuning {large['finetune_mib'] / small['finetune_mib']:.2f}x, "
          f"indexing {large['index_mib'] / small['index_mib']:.2f}x; peak anonymous fine-tuning "
          f"{large['finetune_anonymous_mib'] / small['finetune_anonymous_mib']:.2f}x, "
          f"indexing {large['index_anonymous_mib'] / small['index_anonymous_mib']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"image_size": args.image_size, "steps": args.steps, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
