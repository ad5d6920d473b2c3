"""Image backbones ``f(x) -> z``: the kit's own small CNN (offline) or a timm model (hub).

One factory, :func:`create_image_backbone`, returns ``(backbone, preprocess)`` for both:

- offline names (``"ecmm-cnn"``): :class:`EcmmCNN`, a ~0.7 M-parameter ResNet-style network at
  32 px whose weights come from the kit's own supervised pretraining on the source-domain icon
  corpus (built by ``ecmm prepare``; this module only loads them).
- any other name (``"resnet18"``, ``"convnext_tiny"``, ...): ``timm.create_model(name,
  pretrained=..., num_classes=0)`` with preprocessing from timm's data config.

Both kinds are wrapped so that they expose the same things: ``num_features``,
``forward(x: (B, 3, S, S)) -> (B, num_features)``, ``blocks`` (named stages, so "fine-tune the
last block" is ``backbone.set_trainable(last_blocks=1)``) and ``freeze()`` / ``unfreeze()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecmm.artifacts import CARD_NAME, ArtifactError, assets_home, file_sha256, read_card
from ecmm.device import get_device

OFFLINE_BACKBONES: tuple[str, ...] = ("ecmm-cnn",)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CNNConfig:
    """Architecture of the kit's small ResNet-style CNN."""

    image_size: int = 32  # input side in pixels (photos are resized to this)
    stem_width: int = 16  # channels of the stride-1 stem convolution
    widths: tuple[int, ...] = (24, 48, 96, 192)  # channels of each block; each halves the side
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per-channel normalisation mean
    std: tuple[float, float, float] = IMAGENET_STD  # per-channel normalisation std

    def __post_init__(self) -> None:
        if self.image_size < 2 ** len(self.widths):
            raise ValueError(
                f"image_size={self.image_size} is too small for {len(self.widths)} stride-2 "
                f"blocks: use at least {2 ** len(self.widths)} pixels or fewer blocks."
            )
        if not self.widths or min(self.widths) <= 0 or self.stem_width <= 0:
            raise ValueError("widths and stem_width must be positive channel counts.")


class ImagePreprocess:
    """Map images to a normalised float tensor for a backbone.

    Accepts a uint8 array ``(N, H, W, 3)`` or ``(H, W, 3)``, a uint8 torch tensor of the same
    layout, a PIL image, or a list of PIL images. Resizes (bilinear, antialiased) to
    ``image_size`` and normalises with ``mean`` / ``std``.

    Shapes:
        output: (N, 3, image_size, image_size), float32.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}.")
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __repr__(self) -> str:
        return f"ImagePreprocess(image_size={self.image_size}, mean={self.mean}, std={self.std})"

    def __call__(self, images: Any) -> torch.Tensor:
        """Preprocess ``images`` (see class docstring). Returns (N, 3, S, S) float32."""
        pixels = _to_uint8_tensor(images)  # (N, H, W, 3) uint8
        return self.normalise_floats(pixels.permute(0, 3, 1, 2).float().div_(255.0))

    def normalise_floats(self, x: torch.Tensor) -> torch.Tensor:
        """Resize and normalise float images already in [0, 1].

        Shapes:
            x: (N, 3, H, W) in [0, 1] -> (N, 3, S, S) normalised.
        """
        if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(f"Expected float images (N, 3, H, W) in [0, 1], got {tuple(x.shape)}.")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()


def _to_uint8_tensor(images: Any) -> torch.Tensor:
    """Convert PIL / numpy / torch images to a uint8 tensor (N, H, W, 3)."""
    from PIL import Image

    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("Got an empty list of images: pass at least one image.")
        arrays = [np.asarray(image.convert("RGB")) if isinstance(image, Image.Image)
                  else np.asarray(image) for image in images]
        if len({a.shape for a in arrays}) > 1:
            raise ValueError("Images in a list must share one size: resize them first.")
        images = np.stack(arrays)
    if torch.is_tensor(images):
        tensor = images
    else:
        array = np.asarray(images)
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(
            f"Expected images shaped (N, H, W, 3) or (H, W, 3), got {tuple(tensor.shape)}: "
            "pass RGB uint8 arrays (channels last) or PIL images."
        )
    if tensor.dtype != torch.uint8:
        raise ValueError(f"Expected uint8 pixels (0-255), got {tensor.dtype}: convert with "
                         "np.asarray(image, dtype=np.uint8).")
    return tensor


class ImageBackbone(nn.Module):
    """Common interface of every backbone: ``num_features``, ``blocks``, freezing helpers.

    Subclasses set ``self.num_features`` and implement ``forward(x) -> (B, num_features)``
    and the ``blocks`` property (ordered stages, first to last).
    """

    num_features: int

    @property
    def blocks(self) -> nn.ModuleList:  # pragma: no cover - abstract
        raise NotImplementedError

    def freeze(self) -> "ImageBackbone":
        """Make every parameter non-trainable (feature-based transfer). Returns self."""
        return self.set_trainable(last_blocks=0)

    def unfreeze(self) -> "ImageBackbone":
        """Make every parameter trainable (full fine-tuning). Returns self."""
        for parameter in self.parameters():
            parameter.requires_grad_(True)
        return self

    def set_trainable(self, last_blocks: int) -> "ImageBackbone":
        """Train only the last ``last_blocks`` blocks; freeze everything else. Returns self.

        Frozen parts also keep their batch-norm statistics fixed (they stay in eval mode
        when the model is put in train mode), so a few-shot fine-tune cannot corrupt them.
        """
        if not 0 <= last_blocks <= len(self.blocks):
            raise ValueError(f"last_blocks must be in 0..{len(self.blocks)}, got {last_blocks}.")
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        trainable = list(self.blocks)[len(self.blocks) - last_blocks:]
        for block in trainable:
            for parameter in block.parameters():
                parameter.requires_grad_(True)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "ImageBackbone":
        """Set train mode; submodules whose parameters are all frozen stay in eval mode."""
        super().train(mode)
        if mode:
            for module in self.modules():
                own = list(module.parameters(recurse=False))
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and own and not any(
                    p.requires_grad for p in own
                ):
                    module.eval()
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Count parameters (all, or only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H/2, W/2)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class EcmmCNN(ImageBackbone):
    """The kit's small ResNet-style feature extractor ``f``.

    stem (3x3 conv, stride 1) -> blocks (one residual block per width, each stride 2)
    -> global average pool. ``blocks[0]`` is the stem, ``blocks[-1]`` the last residual block.

    Shapes:
        x: (B, 3, S, S) normalised -> (B, widths[-1]).
    """

    def __init__(self, config: CNNConfig = CNNConfig()) -> None:
        super().__init__()
        self.config = config
        stem = nn.Sequential(
            nn.Conv2d(3, config.stem_width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(config.stem_width), nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = [stem]
        channels = config.stem_width
        for width in config.widths:
            stages.append(_BasicBlock(channels, width, stride=2))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.num_features = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def blocks(self) -> nn.ModuleList:
        """Stem first, then one residual block per width."""
        return self.stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before pooling: (B, 3, S, S) -> (B, C, S/2^k, S/2^k)."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features: (B, 3, S, S) -> (B, num_features)."""
        return self.forward_features(x).mean(dim=(2, 3))


class TimmBackbone(ImageBackbone):
    """A timm model with its classifier removed (``num_classes=0``), behind the common interface.

    ``blocks`` are the model's stages (``stages`` for ConvNeXt and friends, ``layer1..4`` for
    ResNets, ``blocks`` for ViTs), so freezing works the same way as for :class:`EcmmCNN`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_features = int(model.num_features)
        self._blocks = nn.ModuleList(_timm_stages(model))

    @property
    def blocks(self) -> nn.ModuleList:
        return self._blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features: (B, 3, S, S) -> (B, num_features)."""
        return self.model(x)


def _timm_stages(model: nn.Module) -> list[nn.Module]:
    """Ordered stages of a timm model, used as its ``blocks``."""
    for name in ("stages", "blocks", "layers"):
        stages = getattr(model, name, None)
        if isinstance(stages, (nn.Sequential, nn.ModuleList)) and len(stages) > 0:
            return list(stages)
    resnet_layers = [getattr(model, f"layer{i}", None) for i in range(1, 5)]
    if all(layer is not None for layer in resnet_layers):
        return resnet_layers
    return [child for child in model.children() if any(True for _ in child.parameters())]


def pretrained_backbone_dir() -> Path:
    """``ECMM_HOME/assets/backbone``: the kit's pretrained CNN (built by ``ecmm prepare``)."""
    return assets_home() / "backbone"


def load_backbone_checkpoint(directory: str | Path) -> tuple[EcmmCNN, dict]:
    """Load an :class:`EcmmCNN` from ``model.safetensors`` + ``card.json`` in ``directory``.

    The files are checked against the card (:func:`ecmm.artifacts.read_card`; an older card's own
    ``sha256`` is checked here). The card's ``architecture`` gives the CNN's :class:`CNNConfig`.

    Args:
        directory: folder holding ``model.safetensors`` and ``card.json``.

    Returns:
        (backbone in eval mode on CPU, card dict).

    Raises:
        FileNotFoundError: no checkpoint in the folder; ValueError: a checksum mismatch.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    weights = directory / "model.safetensors"
    if not weights.exists() or not (directory / CARD_NAME).exists():
        raise FileNotFoundError(f"No backbone checkpoint in {directory}: run `ecmm prepare` to build it.")
    try:
        card = read_card(directory)
    except ArtifactError as error:
        raise ValueError(f"Checksum or size mismatch: {error}") from None
    if card.get("legacy") and file_sha256(weights) != card.get("sha256"):
        raise ValueError(f"Checksum mismatch for {weights}: the file is corrupted or was changed; "
                         "run `ecmm prepare --repair` to rebuild it.")
    architecture = dict(card["architecture"])
    for key in ("widths", "mean", "std"):
        architecture[key] = tuple(architecture[key])
    backbone = EcmmCNN(CNNConfig(**architecture))
    state = {key.removeprefix("backbone."): value for key, value in load_file(weights).items()
             if key.startswith("backbone.")}
    backbone.load_state_dict(state)
    return backbone.eval(), card


def create_image_backbone(
    name: str = "ecmm-cnn", pretrained: bool = True, device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
) -> tuple[ImageBackbone, ImagePreprocess]:
    """Create an image backbone ``f`` and its preprocessing.

    Args:
        name: ``"ecmm-cnn"`` (offline; the kit's CNN) or a timm model name such as
            ``"resnet18"`` or ``"convnext_tiny"`` (hub profile).
        pretrained: load pretrained weights. Offline they are read from
            ``ECMM_HOME/assets/backbone`` (built by ``ecmm prepare``; missing raises
            :class:`~ecmm.artifacts.ArtifactError`); for timm names hub weights are downloaded.
        device: where to put the model; None picks the best available.
        checkpoint_path: load weights from a local file instead: for ``"ecmm-cnn"`` a folder
            with ``model.safetensors`` + ``card.json``; for timm names a hub-format weights
            file (``model.safetensors`` / ``pytorch_model.bin`` as published on the hub).

    Returns:
        (backbone, preprocess): ``backbone(x: (B, 3, S, S)) -> (B, backbone.num_features)``;
        ``preprocess(images) -> (N, 3, S, S)`` with ``image_size``, ``mean``, ``std``.
    """
    device = get_device(device)
    if name in OFFLINE_BACKBONES:
        if checkpoint_path is not None:
            backbone, _ = load_backbone_checkpoint(checkpoint_path)
        elif pretrained:
            folder = pretrained_backbone_dir()
            if not (folder / CARD_NAME).is_file():
                raise ArtifactError(folder, "not built", command="ecmm prepare")
            backbone, _ = load_backbone_checkpoint(folder)
        else:
            backbone = EcmmCNN(CNNConfig())
        config = backbone.config
        preprocess = ImagePreprocess(config.image_size, config.mean, config.std)
    else:
        try:
            import timm
        except ImportError as error:  # pragma: no cover - timm is a dependency
            raise ValueError(f"{name!r} is a timm model name but timm is not installed.") from error
        if not timm.is_model(name.split(".")[0]):
            raise ValueError(f"Unknown backbone {name!r}: use one of {OFFLINE_BACKBONES} or a "
                             "timm model name (timm.list_models()), e.g. 'resnet18'.")
        options: dict[str, Any] = {}
        if checkpoint_path is not None:
            if not Path(checkpoint_path).is_file():
                raise FileNotFoundError(f"No weights file at {checkpoint_path}: pass the path of "
                                        "a hub-format model.safetensors / pytorch_model.bin.")
            options["pretrained_cfg_overlay"] = {"file": str(checkpoint_path)}
        model = timm.create_model(name, pretrained=pretrained or checkpoint_path is not None,
                                  num_classes=0, **options)
        data_config = timm.data.resolve_data_config({}, model=model)
        backbone = TimmBackbone(model)
        preprocess = ImagePreprocess(data_config["input_size"][-1], data_config["mean"],
                                     data_config["std"])
    return backbone.to(device).eval(), preprocess


def cnn_config_dict(config: CNNConfig) -> dict:
    """``asdict(config)`` with tuples as lists (JSON-ready), for checkpoint cards."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(config).items()}
