"""Export, quantise and time the two towers of a CLIP model for deployment on a CPU.

- :class:`ImageTower` / :class:`TextTower` wrap a CLIP model's ``encode_image`` / ``encode_text``
  as plain tensor-in, tensor-out modules, which is what exporters want.
- :func:`export_torchscript` (``torch.jit.trace``) and :func:`export_onnx` (``torch.onnx.export``,
  dynamic batch and sequence axes) write the files; :func:`run_onnx` runs one with onnxruntime;
  :func:`max_abs_difference` compares any two outputs.
- :func:`quantize_int8`: dynamic int8 quantisation of every ``nn.Linear`` (weights stored as int8,
  activations quantised on the fly).  It helps transformers (MiniLM is mostly Linear layers); a CNN
  has only its projection to quantise, so the image tower barely changes.
- :func:`size_on_disk` and :func:`measure_latency` (median over repeats) give the numbers of the
  fp32-vs-int8 table.

Timings are measurements of this machine at this moment: report them, never assert them in tests.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ecmm.onnx_runtime import onnx_session, onnxruntime_installed

__all__ = ["ImageTower", "TextTower", "export_torchscript", "load_torchscript", "export_onnx",
           "onnxruntime_installed", "onnx_session", "run_onnx", "max_abs_difference", "quantize_int8",
           "count_quantized_linear", "size_on_disk", "measure_latency", "benchmark_towers", "throughput"]


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Silence the deprecation chatter of torch.jit, the legacy ONNX exporter and torch.ao."""
    with warnings.catch_warnings():
        try:
            from transformers.utils import logging as transformers_logging
        except ImportError:  # pragma: no cover - transformers is a dependency
            transformers_logging = None
        verbosity = transformers_logging.get_verbosity() if transformers_logging else None
        if transformers_logging:
            transformers_logging.set_verbosity_error()  # e.g. config notes printed while tracing
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
            warnings.filterwarnings("ignore", category=category, module=r"ecmm\.export")
        warnings.filterwarnings("ignore", message=r".*(deprecated|legacy TorchScript|trace might not generalize|"
                                r"Converting a tensor to a Python).*")
        try:
            yield
        finally:
            if transformers_logging:
                transformers_logging.set_verbosity(verbosity)


def _without(model: nn.Module, paths: Sequence[str]) -> nn.Module:
    """A shallow view of ``model`` (sharing its parameters) without the named children.

    ``paths`` name child modules or parameters, dotted for nested ones (``"model.visual"``);
    names the model does not have are skipped. Exported files and size measurements then hold
    only one tower's weights.
    """
    own = [path for path in paths if "." not in path and (path in model._modules or path in model._parameters)]
    nested: dict[str, list[str]] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if rest and isinstance(model._modules.get(head), nn.Module):
            nested.setdefault(head, []).append(rest)
    if not own and not nested:
        return model
    import copy

    view = copy.copy(model)
    view._modules = {key: (_without(value, nested[key]) if key in nested else value)
                     for key, value in model._modules.items() if key not in own}
    view._parameters = {key: value for key, value in model._parameters.items() if key not in own}
    return view


# Parts used only by encode_text / encode_image, for the offline ClipModel and the open_clip adapter.
TEXT_PARTS = ("text_encoder", "text_projection", "model.token_embedding", "model.positional_embedding",
              "model.transformer", "model.ln_final", "model.text_projection", "model.text")
IMAGE_PARTS = ("backbone", "image_projection", "model.visual")
OFFLINE_TOKEN_NAMES = ("input_ids", "attention_mask")  # token tensors of a tokenizer that returns a dict


class ImageTower(nn.Module):
    """The image encoder of a CLIP model as a module: normalised embeddings.

    Args:
        model: anything with ``encode_image(images) -> (B, E)``; the text parts (:data:`TEXT_PARTS`)
            are left out of the tower.

    Shapes:
        images ``(B, 3, S, S)`` preprocessed float -> ``(B, E)`` L2-normalised.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = _without(model, TEXT_PARTS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)


class TextTower(nn.Module):
    """The text encoder of a CLIP model as a module taking token tensors.

    A tokenizer that returns a dict (the offline model: ``input_ids``, ``attention_mask``) gives one
    input per key; one that returns a tensor (open_clip: ``(B, context_length)`` ids) gives one
    input. :attr:`input_names` lists them and :meth:`example_inputs` tokenises texts into them.

    Args:
        model: anything with ``encode_text(tokens) -> (B, E)`` and a ``tokenizer`` (without one,
            tokens are the offline ``input_ids``, ``attention_mask``); the image parts
            (:data:`IMAGE_PARTS`) are left out of the tower.

    Shapes:
        each input ``(B, L)`` int64 -> ``(B, E)`` L2-normalised.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = _without(model, IMAGE_PARTS)
        self.tokenizer = getattr(model, "tokenizer", None)
        sample = self.tokenizer(["a"]) if self.tokenizer is not None else dict.fromkeys(OFFLINE_TOKEN_NAMES)
        self.input_names: tuple[str, ...] = tuple(sample) if isinstance(sample, Mapping) else ("tokens",)
        self.named_tokens = isinstance(sample, Mapping)

    def example_inputs(self, texts: Sequence[str]) -> tuple[torch.Tensor, ...]:
        """Tokenise ``texts`` into the tower's inputs (in :attr:`input_names` order)."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer: build the token tensors yourself")
        tokens = self.tokenizer(list(texts))
        return tuple(tokens[name] for name in self.input_names) if self.named_tokens else (tokens,)

    def forward(self, *tokens: torch.Tensor) -> torch.Tensor:
        if len(tokens) != len(self.input_names):
            raise ValueError(f"pass {len(self.input_names)} token tensors ({', '.join(self.input_names)}); "
                             f"got {len(tokens)}")
        if self.named_tokens:
            return self.model.encode_text(dict(zip(self.input_names, tokens)))
        return self.model.encode_text(tokens[0])


def _as_tuple(example_inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    if torch.is_tensor(example_inputs):
        return (example_inputs,)
    inputs = tuple(example_inputs)
    if not inputs or not all(torch.is_tensor(x) for x in inputs):
        raise ValueError("example_inputs must be a tensor or a non-empty sequence of tensors")
    return inputs


def export_torchscript(module: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor],
                       path: str | Path) -> Path:
    """Trace ``module`` with ``example_inputs`` and save the TorchScript file.

    Args:
        module: the model (put in eval mode here).
        example_inputs: one tensor or a tuple of tensors, as ``module(*inputs)`` takes them.
        path: output ``.pt`` file (folder created).

    Returns:
        The path. Load it back with ``torch.jit.load(path)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with _quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(module, _as_tuple(example_inputs), check_trace=False)
        traced.save(str(path))
    return path


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file written by :func:`export_torchscript` (eval mode, CPU)."""
    with _quiet_exporters():
        return torch.jit.load(str(path), map_location="cpu").eval()


def export_onnx(module: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor], path: str | Path,
                input_names: Sequence[str], output_name: str = "embeddings",
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None, opset: int = 17) -> Path:
    """Export ``module`` to ONNX with the TorchScript-based exporter (no extra packages needed).

    Args:
        module: the model (put in eval mode here).
        example_inputs: one tensor or a tuple of tensors.
        path: output ``.onnx`` file (folder created).
        input_names: one name per input, used as the feed names in onnxruntime.
        output_name: name of the single output.
        dynamic_axes: ``{name: {axis: label}}``; default makes axis 0 (batch) of every input and the
            output dynamic, and axis 1 too for 2-D integer inputs (sequence length).
        opset: ONNX opset version.

    Returns:
        The path.
    """
    inputs = _as_tuple(example_inputs)
    if len(input_names) != len(inputs):
        raise ValueError(f"got {len(inputs)} example inputs but {len(input_names)} input_names; give one name each")
    if dynamic_axes is None:
        dynamic_axes = {output_name: {0: "batch"}}
        for name, tensor in zip(input_names, inputs):
            axes = {0: "batch"}
            if tensor.ndim == 2 and not tensor.is_floating_point():
                axes[1] = "sequence"
            dynamic_axes[name] = axes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with _quiet_exporters(), torch.no_grad():
        torch.onnx.export(module, inputs, str(path), input_names=list(input_names), output_names=[output_name],
                          dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()}, opset_version=opset,
                          dynamo=False)
    return path


def run_onnx(path_or_session: str | Path | Any, inputs: Mapping[str, torch.Tensor | np.ndarray]) -> np.ndarray:
    """Run an exported model with onnxruntime.

    Args:
        path_or_session: the ``.onnx`` file or a session from :func:`onnx_session`.
        inputs: ``{input_name: tensor or array}``.

    Returns:
        The first output as a numpy array.
    """
    session = onnx_session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    feeds = {name: (value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value))
             for name, value in inputs.items()}
    return session.run(None, feeds)[0]


def max_abs_difference(reference: torch.Tensor | np.ndarray, candidate: torch.Tensor | np.ndarray) -> float:
    """Largest absolute element-wise difference between two outputs of the same shape."""
    first = reference.detach().cpu().numpy() if torch.is_tensor(reference) else np.asarray(reference)
    second = candidate.detach().cpu().numpy() if torch.is_tensor(candidate) else np.asarray(candidate)
    if first.shape != second.shape:
        raise ValueError(f"outputs differ in shape: {first.shape} vs {second.shape}")
    return float(np.abs(first.astype(np.float64) - second.astype(np.float64)).max())


def quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (a quantised copy; CPU only).

    Args:
        module: a float32 model on the CPU (left unchanged).

    Returns:
        A copy in eval mode whose Linear layers hold int8 weights.
    """
    import copy

    float_module = copy.deepcopy(module).cpu().eval()
    with _quiet_exporters():
        quantized = torch.ao.quantization.quantize_dynamic(float_module, {nn.Linear}, dtype=torch.qint8)
    for layer in quantized.modules():  # open_clip reads the compute dtype of an int8 layer from this
        if "quantized" in type(layer).__module__:  # attribute (its own int8 path sets it too)
            layer.int8_original_dtype = torch.float32
    return quantized


def count_quantized_linear(module: nn.Module) -> tuple[int, int]:
    """``(quantised Linear layers, float Linear layers)`` in a module."""
    quantized = sum(1 for m in module.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__)
    floats = sum(1 for m in module.modules() if type(m) is nn.Linear)
    return quantized, floats


def size_on_disk(module: nn.Module, only: Callable[[str], bool] | None = None) -> int:
    """Bytes of the module's ``state_dict`` serialised with ``torch.save`` (int8 weights included).

    Args:
        module: the model.
        only: optional filter on state-dict keys (e.g. ``lambda key: key.startswith("model.text")``).

    Returns:
        Size in bytes.
    """
    state = module.state_dict()
    if only is not None:
        state = {key: value for key, value in state.items() if only(key)}
    buffer = io.BytesIO()
    with _quiet_exporters():
        torch.save(state, buffer)
    return buffer.getbuffer().nbytes


@torch.no_grad()
def measure_latency(function: Callable[[], Any], repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Wall-clock latency of ``function()``: median and 90th percentile over ``repeats`` calls.

    Args:
        function: a zero-argument callable (e.g. ``lambda: tower(batch)``).
        repeats: timed calls.
        warmup: untimed calls first (allocations, lazy initialisation).

    Returns:
        ``{"median_ms", "p90_ms", "repeats"}``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    with _quiet_exporters():
        for _ in range(warmup):
            function()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append((time.perf_counter() - start) * 1000.0)
    ordered = sorted(times)
    return {"median_ms": statistics.median(times), "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "repeats": float(repeats)}


def _batch(example: Any, size: int) -> tuple[torch.Tensor, ...]:
    """Repeat the first row of each example tensor to ``size`` rows."""
    return tuple(x[:1].expand(size, *x.shape[1:]).contiguous() for x in _as_tuple(example))


def benchmark_towers(towers: Mapping[str, Mapping[str, nn.Module]], examples: Mapping[str, Any],
                     sizes: Mapping[str, Callable[[str], bool]] | None = None, batch_sizes: Sequence[int] = (1, 32),
                     repeats: int = 10) -> "Any":
    """Size and CPU latency of each tower in each precision, with its deviation from fp32.

    Args:
        towers: ``{tower: {precision: module}}``, e.g. ``{"text": {"fp32": t, "int8": q}}``; the
            first precision of each tower is the reference for ``max_abs_diff``.
        examples: ``{tower: input tensor or tuple}``; its first row is repeated to each batch size.
        sizes: optional ``{tower: key filter}`` for :func:`size_on_disk` (count only that tower's weights).
        batch_sizes: batch sizes timed.
        repeats: timed calls per measurement (the median is reported).

    Returns:
        A DataFrame with ``tower, precision, size_mb, latency_ms_b{N}`` per batch size, ``max_abs_diff``.
    """
    import pandas as pd

    rows = []
    for tower, variants in towers.items():
        reference = None
        for precision, module in variants.items():
            module.eval()
            row = {"tower": tower, "precision": precision,
                   "size_mb": size_on_disk(module, (sizes or {}).get(tower)) / 1e6}
            for size in batch_sizes:
                inputs = _batch(examples[tower], size)
                row[f"latency_ms_b{size}"] = measure_latency(lambda: module(*inputs), repeats=repeats)["median_ms"]
            with torch.no_grad():
                output = module(*_batch(examples[tower], max(batch_sizes)))
            reference = output if reference is None else reference
            row["max_abs_diff"] = max_abs_difference(reference, output)
            rows.append(row)
    return pd.DataFrame(rows)


def throughput(function: Callable[[], Any], num_items: int) -> float:
    """Items per second of one call of ``function()`` that processes ``num_items`` items."""
    if num_items < 1:
        raise ValueError("num_items must be >= 1")
    with torch.no_grad(), _quiet_exporters():
        start = time.perf_counter()
        function()
        return num_items / max(time.perf_counter() - start, 1e-9)
