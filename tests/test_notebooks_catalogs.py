"""Notebooks 04-09 on the two other catalog sources, with a tiny open_clip model, under nbval.

Each notebook runs in quick mode in its own pytest process with ``--nbval-lax`` (as ``make test``
runs the notebooks on the offline shop), on

- a hub-format parquet shard (``ECMM_PROFILE=hub``, ``ECMM_HUB_DATA=<shard>``: the fashion data
  set's exact schema, images as PNG bytes, written by ``catalog_fixtures.write_hub_shard``), and
- a folder catalog (``ECMM_CATALOG=<catalog.csv>``: a CSV and JPEG files, written by
  ``catalog_fixtures.write_folder_catalog``),

both with ``ECMM_MODEL="<config.json>:<checkpoint.safetensors>"``: the tiny, randomly initialised
open_clip ViT of ``tests/conftest.py``. With such a model the notebooks assert what holds for any
run (the pipeline runs; every metric is finite and in range; fine-tuning moves the weights); their
transfer claims stay asserted on the offline shop with the kit's model, in ``make test``.

``ECMM_HOME`` is a temporary folder whose ``data/*`` and ``assets/*`` entries are symbolic links to
the prepared cache (the offline assets some cells read: the kit's CNN, the intents), so nothing is
rebuilt; what the notebooks build for these catalogs (``shops/...``, recorded metrics) stays in the
temporary folder.

Every run belongs to the default suite except the hub-format run of notebook 07: on the hub
profile its intents are the Bitext customer-support messages, read from the Hugging Face hub, so
that run is marked ``slow`` and ``network`` (07's photo tickets run on the folder catalog).

Measured in one run on a 2-core machine (quick mode, seconds): folder catalog (120 SKUs) 04: 38,
05: 47, 06: 16, 07: 55, 08: 43, 09: 23; hub-format shard (300 rows) 04: 43, 05: 55, 06: 21, 08: 51; with the book tests beside it, 09: 27.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

REPOSITORY_DIR = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPOSITORY_DIR / "notebooks"
CANDIDATES = ["04_finetuning_for_image_search", "05_attributes_and_hybrid_search", "06_recommendation",
              "07_customer_service", "08_deployment_and_scale", "09_interpretability_and_challenges"]
DEFAULT_HUB_RUNS = ("04", "05", "06", "08", "09")  # in `make test`; 07 reads the hub profile's Bitext intents
HUB_ROWS, FOLDER_ROWS = 300, 120  # enough SKUs for every split of each catalog
NOTEBOOK_TIMEOUT_S = 1800


def _takes_a_catalog(name: str) -> bool:
    """Whether the notebook's parameters cell reads ``ECMM_CATALOG`` and ``ECMM_MODEL``."""
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    parameters = [cell.source for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    return bool(parameters) and "ECMM_CATALOG" in parameters[0] and "ECMM_MODEL" in parameters[0]


NOTEBOOKS = [name for name in CANDIDATES if _takes_a_catalog(name)]


def _cases() -> list:
    cases = []
    for catalog in ("folder", "hub"):
        for name in NOTEBOOKS:
            marks = [pytest.mark.slow] if catalog == "hub" and name[:2] not in DEFAULT_HUB_RUNS else []
            if catalog == "hub" and name.startswith("07_"):
                marks.append(pytest.mark.network)  # the hub profile's intents are Bitext, downloaded from the hub
            cases.append(pytest.param(catalog, name, marks=marks, id=f"{catalog}-{name[:2]}"))
    return cases


@pytest.fixture(scope="module")
def tiny_model_spec(tiny_open_clip) -> str:
    """``"<config.json>:<checkpoint.safetensors>"`` of the tiny open_clip ViT (both files written by the fixture)."""
    from conftest import TINY_OPEN_CLIP

    _, checkpoint = tiny_open_clip
    config = Path(checkpoint).parent / f"{TINY_OPEN_CLIP}.json"
    assert config.is_file() and Path(checkpoint).is_file()
    return f"{config}:{checkpoint}"


@pytest.fixture(scope="module")
def linked_home(tmp_path_factory) -> Path:
    """A temporary ECMM_HOME whose ``data`` and ``assets`` entries link to the prepared cache."""
    prepared = Path(os.environ.get("ECMM_HOME") or "~/.cache/ecmm").expanduser()
    if not (prepared / "assets").is_dir() or not (prepared / "data").is_dir():
        pytest.skip(f"no prepared cache at {prepared}: run `ecmm prepare` first")
    home = tmp_path_factory.mktemp("ecmm_home")
    for folder in ("data", "assets"):
        (home / folder).mkdir()
        for entry in sorted((prepared / folder).iterdir()):
            (home / folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return home


@pytest.fixture(scope="module")
def catalog_environments(tmp_path_factory, tiny_model_spec, linked_home) -> dict[str, dict[str, str]]:
    """The environment variables of each catalog: the hub-format shard and the folder catalog."""
    fixtures = pytest.importorskip("catalog_fixtures")
    shard = fixtures.write_hub_shard(tmp_path_factory.mktemp("hub_shard") / "train-00000-of-00001.parquet",
                                     rows=HUB_ROWS, seed=0)
    csv_path = fixtures.write_folder_catalog(tmp_path_factory.mktemp("folder_catalog"), rows=FOLDER_ROWS, seed=0)
    common = {"ECMM_MODEL": tiny_model_spec, "ECMM_HOME": str(linked_home), "ECMM_QUICK": "1",
              "ECMM_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg",
              "TOKENIZERS_PARALLELISM": "false"}
    return {"hub": {**common, "ECMM_PROFILE": "hub", "ECMM_HUB_DATA": str(shard), "ECMM_CATALOG": ""},
            "folder": {**common, "ECMM_PROFILE": "offline", "ECMM_CATALOG": str(csv_path)}}


def _run_under_nbval(notebook: Path, environment: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    """Execute one notebook with nbval in a pytest process of its own; return the result and its seconds."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
               "--nbval-sanitize-with", str(REPOSITORY_DIR / "tests" / "nbval_sanitize.cfg"),
               f"--nbval-cell-timeout={NOTEBOOK_TIMEOUT_S}", str(notebook)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPOSITORY_DIR, env={**os.environ, **environment}, capture_output=True,
                            text=True, timeout=NOTEBOOK_TIMEOUT_S)
    return result, time.perf_counter() - started


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebook reads ECMM_CATALOG and ECMM_MODEL")
@pytest.mark.parametrize(("catalog", "name"), _cases())
def test_notebook_runs_on_the_catalog(catalog: str, name: str, catalog_environments, record_property) -> None:
    """The notebook executes cell by cell (its closing asserts included) on the catalog with the tiny model."""
    environment = catalog_environments[catalog]
    result, seconds = _run_under_nbval(NOTEBOOK_DIR / f"{name}.ipynb", environment)
    record_property("seconds", round(seconds, 1))
    times = Path(environment["ECMM_HOME"]) / "notebook-catalog-times.jsonl"
    with times.open("a") as file:
        file.write(json.dumps({"catalog": catalog, "notebook": name, "seconds": round(seconds, 1),
                               "returncode": result.returncode}) + "\n")
    print(f"{name} on the {catalog} catalog: {seconds:.0f} s")
    output = result.stdout + result.stderr
    first_failure = max(output.find("_ notebooks/"), 0)  # nbval's report of the first failing cell
    assert result.returncode == 0, (f"{name} failed on the {catalog} catalog "
                                    f"({environment.get('ECMM_CATALOG') or environment.get('ECMM_HUB_DATA')}):\n"
                                    + output[first_failure:first_failure + 6000] + "\n...\n" + output[-2000:])
