"""Image backbones and preprocessing (offline CNN and the timm code path)."""

import numpy as np
import pytest
import torch
from PIL import Image

from ecmm.models.image import (
    CNNConfig, EcmmCNN, ImagePreprocess, TimmBackbone, create_image_backbone,
)

TINY = CNNConfig(image_size=16, stem_width=4, widths=(8, 16))


def test_cnn_shapes_and_blocks():
    backbone = EcmmCNN(TINY)
    assert backbone(torch.randn(2, 3, 16, 16)).shape == (2, backbone.num_features) == (2, 16)
    assert len(backbone.blocks) == 3  # stem + one block per width
    assert backbone.forward_features(torch.randn(1, 3, 16, 16)).shape == (1, 16, 4, 4)


def test_set_trainable_freezes_all_but_last_block_and_keeps_frozen_batchnorm_in_eval():
    backbone = EcmmCNN(TINY).set_trainable(last_blocks=1)
    trainable = {name for name, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("stages.2.") for name in trainable)
    backbone.train()
    assert not backbone.blocks[0][1].training  # frozen stem batch norm
    assert backbone.blocks[-1].bn1.training
    assert backbone.freeze().num_parameters(trainable_only=True) == 0
    assert backbone.unfreeze().num_parameters(trainable_only=True) == backbone.num_parameters()
    with pytest.raises(ValueError):
        backbone.set_trainable(last_blocks=9)


def test_preprocess_accepts_arrays_and_pil_and_normalises():
    preprocess = ImagePreprocess(8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    white = np.full((2, 20, 20, 3), 255, np.uint8)
    out = preprocess(white)
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.ones_like(out))  # (1 - 0.5) / 0.5
    assert preprocess(white[0]).shape == (1, 3, 8, 8)
    image = Image.fromarray(np.zeros((10, 12, 3), np.uint8))
    assert preprocess(image).shape == (1, 3, 8, 8)
    torch.testing.assert_close(preprocess([image, image]), -torch.ones(2, 3, 8, 8))


def test_preprocess_rejects_bad_input():
    preprocess = ImagePreprocess(8, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="channels last"):
        preprocess(np.zeros((1, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        preprocess([])


def test_factory_offline_without_weights():
    backbone, preprocess = create_image_backbone("ecmm-cnn", pretrained=False, device="cpu")
    assert isinstance(backbone, EcmmCNN) and preprocess.image_size == backbone.config.image_size
    x = preprocess(np.zeros((3, 128, 128, 3), np.uint8))
    assert backbone(x).shape == (3, backbone.num_features)
    with pytest.raises(ValueError, match="Unknown backbone"):
        create_image_backbone("no-such-model", pretrained=False)


def test_factory_timm_path_loads_a_local_hub_format_checkpoint(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    with torch.no_grad():
        reference.fc = torch.nn.Identity()
        reference.conv1.weight.fill_(0.01)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    backbone, preprocess = create_image_backbone("resnet18", pretrained=True, device="cpu",
                                                 checkpoint_path=path)
    assert isinstance(backbone, TimmBackbone) and backbone.num_features == 512
    assert len(backbone.blocks) == 4 and preprocess.image_size == 224
    torch.testing.assert_close(backbone.model.conv1.weight, reference.conv1.weight)
    assert backbone(preprocess(np.zeros((1, 64, 64, 3), np.uint8))).shape == (1, 512)


def test_pretrained_offline_backbone_is_read_never_built(tmp_path, monkeypatch):
    import ecmm.assets
    from ecmm.artifacts import ArtifactError

    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    monkeypatch.setattr(ecmm.assets, "ensure_asset", lambda *a, **k: pytest.fail("a model must not build assets"))
    with pytest.raises(ArtifactError) as error:
        create_image_backbone("ecmm-cnn", pretrained=True, device="cpu")
    assert error.value.command == "ecmm prepare" and error.value.folder == tmp_path / "assets" / "backbone"


def test_backbone_checkpoint_written_with_write_artifact_loads(tmp_path):
    from safetensors.torch import save_file

    from ecmm.artifacts import write_artifact
    from ecmm.models.image import cnn_config_dict, load_backbone_checkpoint

    torch.manual_seed(0)
    reference = EcmmCNN(TINY).eval()
    state = {f"backbone.{k}": v.contiguous() for k, v in reference.state_dict().items()}
    folder = write_artifact(tmp_path / "backbone", lambda f: save_file(state, str(f / "model.safetensors")),
                            {"architecture": cnn_config_dict(TINY)})
    backbone, card = load_backbone_checkpoint(folder)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(backbone(x), reference(x))
    assert "files" in card and backbone.config == TINY
