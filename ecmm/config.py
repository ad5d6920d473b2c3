"""Run-time settings: profile, quick mode, cache folder, seed; atomic writes; recorded metrics.

Settings come from arguments first, then the environment:

- ``ECMM_PROFILE``: ``offline`` (default, no network) or ``hub`` (Hugging Face hub assets).
- ``ECMM_QUICK``: ``1`` shrinks data and epochs (tests and CI); ``0`` (default) is the full run.
- ``ECMM_HOME``: cache folder for prepared data and trained assets (default ``~/.cache/ecmm``).
- ``ECMM_CATALOG``: path to your own catalog's CSV (wins over the profile; CLI ``--catalog``);
  ``ECMM_SKIP_BAD_IMAGES=1`` leaves out its products with unreadable images (``--skip-bad-images``).
- ``ECMM_MODEL``: the CLIP model, ``ecmm-clip`` (default) or an open_clip name[:tag or checkpoint]
  (CLI ``--model``).

:func:`ecmm.data.catalogs.open_catalog` and :func:`ecmm.data.catalogs.model_spec` read the last
two; what is built from a (catalog, model) pair is cached in its own folder under ``ECMM_HOME``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

PROFILES = ("offline", "hub")


@dataclass(frozen=True)
class Settings:
    """Resolved run-time settings.

    Attributes:
        profile: "offline" uses only what pip packages ship; "hub" reads the Hugging Face hub.
        quick: shrink data sizes and epochs so that a notebook runs in about a minute.
        home: cache folder for prepared data, pretrained assets and recorded metrics.
        seed: default seed for everything random.
    """

    profile: str = "offline"  # "offline" or "hub"
    quick: bool = False  # small sizes for tests / CI
    home: Path = Path("~/.cache/ecmm").expanduser()  # cache root
    seed: int = 0  # default seed

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(
                f"Unknown profile {self.profile!r}: use one of {PROFILES} "
                "(set ECMM_PROFILE or pass profile=...)."
            )


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not a flag: set it to 1 or 0.")


def get_settings(profile: str | None = None, quick: bool | None = None) -> Settings:
    """Resolve settings from arguments, then the environment, then defaults.

    Args:
        profile: "offline" or "hub"; None reads ``ECMM_PROFILE`` (default "offline").
        quick: shrink sizes; None reads ``ECMM_QUICK`` (default False).

    Returns:
        A frozen :class:`Settings`.
    """
    profile = profile or os.environ.get("ECMM_PROFILE") or "offline"
    if quick is None:
        quick = bool(_env_flag("ECMM_QUICK"))
    home = Path(os.environ.get("ECMM_HOME") or "~/.cache/ecmm").expanduser()
    return Settings(profile=profile.lower(), quick=quick, home=home)


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    An interrupted write (exception, Ctrl-C, killed process) never leaves a half-written
    file at ``path`` that a later run would trust.

    Args:
        path: the final file path. Its folder is created if missing.

    Yields:
        The temporary path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.replace(temporary_path, path)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically. Returns the path."""
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def run_name(settings: Settings) -> str:
    """What recorded metrics are filed under: the profile, plus a digest of ``ECMM_CATALOG`` and
    ``ECMM_MODEL`` when either is set to something else than the default (so a run on your own
    catalog or model never overwrites the offline shop's numbers)."""
    import hashlib

    catalog = os.environ.get("ECMM_CATALOG", "").strip()
    model = os.environ.get("ECMM_MODEL", "").strip()
    if not catalog and model in ("", "ecmm-clip"):
        return settings.profile
    return f"{settings.profile}-{hashlib.sha256(f'{catalog}|{model}'.encode()).hexdigest()[:8]}"


def record_metrics(name: str, metrics: Mapping[str, Any], settings: Settings | None = None):
    """Save a notebook's key metrics as JSON under ``ECMM_HOME/metrics`` and show them as a table.

    Args:
        name: notebook name, e.g. "02_transfer_learning".
        metrics: flat mapping of metric name to value (numbers or short strings).
        settings: resolved settings; None reads the environment.

    Returns:
        A pandas DataFrame with one row per metric (displays as an HTML table in Jupyter).
    """
    import pandas as pd

    settings = settings or get_settings()
    mode = "quick" if settings.quick else "full"
    payload = {"notebook": name, "profile": settings.profile, "run": run_name(settings), "mode": mode,
               "metrics": dict(metrics)}
    write_json(settings.home / "metrics" / f"{name}.{run_name(settings)}.{mode}.json", payload)
    frame = pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())})
    return frame.set_index("metric")
