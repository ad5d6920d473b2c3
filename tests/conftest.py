"""Test settings: CPU, quick mode, offline, headless plotting; shared small fixtures."""

import os

os.environ.setdefault("ECMM_DEVICE", "cpu")  # unit tests and nbval kernels run on the CPU
os.environ.setdefault("ECMM_QUICK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # `make test` runs several pytest-xdist workers: each (and the notebook kernels it starts) gets
    # its share of the cores, so that torch's thread pools do not fight over them.
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pytest  # noqa: E402


SHOP_VARIABLES = ("ECMM_CATALOG", "ECMM_MODEL", "ECMM_SKIP_BAD_IMAGES", "ECMM_PROFILE", "ECMM_HUB_DATA")


@pytest.fixture(autouse=True)
def _restore_shop_variables():
    """``ecmm ... --catalog/--model`` write the shop's variables into ``os.environ`` (so that child
    processes agree): put them back after each test, or later notebook kernels would inherit them."""
    import os

    saved = {name: os.environ.get(name) for name in SHOP_VARIABLES}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _close_figures():
    """Close matplotlib figures after each test."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def text_encoder():
    """The real all-MiniLM-L6-v2 text tower on the CPU, loaded once per test module."""
    from ecmm.models import load_text_encoder

    return load_text_encoder(device="cpu")


@pytest.fixture()
def tiny_clip(text_encoder):
    """A seeded tiny offline CLIP model (16-px CNN, 8-d embeddings) and its preprocessing."""
    import torch

    from ecmm.models.clip import ClipConfig, ClipModel
    from ecmm.models.image import CNNConfig, EcmmCNN, ImagePreprocess

    torch.manual_seed(0)
    model = ClipModel(EcmmCNN(CNNConfig(image_size=16, stem_width=4, widths=(8, 16))), text_encoder,
                      ClipConfig(embed_dim=8))
    return model, ImagePreprocess(16, (0.5,) * 3, (0.5,) * 3)


TINY_OPEN_CLIP = "ecmm-tiny-vit"  # a custom open_clip architecture registered by the fixture below
TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory):
    """A small real open_clip ViT (2 layers, width 64, 32 px, 4 x 4 patches; text: 2 layers, width 64,
    the real 49,408-token BPE vocabulary), randomly initialised with a fixed seed, saved to a local
    ``.safetensors`` file and loaded back through :func:`ecmm.models.clip.create_clip_model`.

    Returns:
        ``(model, checkpoint_path)``; tests that change the model should ``copy.deepcopy`` it.
    """
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    from ecmm.models.clip import create_clip_model

    folder = tmp_path_factory.mktemp("tiny_open_clip")
    config_path = folder / f"{TINY_OPEN_CLIP}.json"
    config_path.write_text(json.dumps(TINY_OPEN_CLIP_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(0)
    reference = open_clip.create_model(TINY_OPEN_CLIP, pretrained=None)
    checkpoint = folder / "tiny_vit.safetensors"
    save_file({key: value.contiguous() for key, value in reference.state_dict().items()}, str(checkpoint))
    model, _, _ = create_clip_model(TINY_OPEN_CLIP, pretrained=str(checkpoint), device="cpu")
    return model, checkpoint


@pytest.fixture(scope="session")
def hub_shard(tmp_path_factory):
    """A 300-row parquet shard in the hub data set's exact schema (PNG images); returns its path."""
    from catalog_fixtures import write_hub_shard

    return write_hub_shard(tmp_path_factory.mktemp("hub_shard") / "train-00000-of-00001.parquet", rows=300)


@pytest.fixture(scope="session")
def folder_catalog(tmp_path_factory):
    """A 60-product folder catalog (catalog.csv and JPEG images, no interactions.csv: shoppers are
    simulated); returns the CSV path. ``catalog_fixtures.write_folder_catalog(..., interactions=True)``
    adds an event log."""
    from catalog_fixtures import write_folder_catalog

    return write_folder_catalog(tmp_path_factory.mktemp("folder_catalog"), rows=60)


LONG_FILES_FIRST = ("test_notebooks_catalogs.py", ".ipynb")  # the longest chains of one file


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, hand out the files whose tests take longest first (``make test`` passes
    ``--no-loadscope-reorder``, so this order is kept): the catalog runs of notebooks 04-09, then
    the notebooks; the many short unit-test files fill in behind them and no worker is left alone
    at the end with a long file."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return

    def rank(item) -> int:
        name = item.path.name
        return 0 if name == LONG_FILES_FIRST[0] else 1 if name.endswith(LONG_FILES_FIRST[1]) else 2

    items.sort(key=rank)  # stable: each file's tests keep their order
