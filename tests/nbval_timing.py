"""A pytest plugin for notebook runs: time each notebook and collect its recorded metrics.

Loaded by ``make test-gpu`` (``-p nbval_timing`` with ``tests/`` on ``PYTHONPATH``). nbval turns
each notebook into one test item per cell; this plugin adds up the cells' durations per notebook
and, at the end, writes ``build/notebook-times.md``: one row per notebook with its wall time, its
outcome and the metrics its closing cell stored through ``ecmm.config.record_metrics``.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

_SECONDS: dict[str, float] = defaultdict(float)
_FAILED: set[str] = set()
_START = time.perf_counter()


def pytest_runtest_logreport(report) -> None:
    """Add every cell's duration (setup, call, teardown) to its notebook's total."""
    path = report.nodeid.split("::")[0]
    if not path.endswith(".ipynb"):
        return
    _SECONDS[path] += report.duration
    if report.failed:
        _FAILED.add(path)


def _metrics(notebook: str) -> str:
    from ecmm.config import get_settings, run_name

    settings = get_settings()
    mode = "quick" if settings.quick else "full"
    path = settings.home / "metrics" / f"{Path(notebook).stem}.{run_name(settings)}.{mode}.json"
    if not path.is_file():
        return "(none recorded)"
    metrics = json.loads(path.read_text()).get("metrics", {})
    shown = [f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
             for key, value in list(metrics.items())[:6]]
    return ", ".join(shown)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Write the table of per-notebook times and metrics."""
    if not _SECONDS:
        return
    import torch

    device = os.environ.get("ECMM_DEVICE", "auto")
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    lines = [f"# Notebook run times ({device}: {name}, ECMM_QUICK={os.environ.get('ECMM_QUICK', '0')})", "",
             "| notebook | seconds | outcome | recorded metrics |", "| --- | ---: | --- | --- |"]
    for notebook in sorted(_SECONDS):
        outcome = "failed" if notebook in _FAILED else "passed"
        lines.append(f"| {Path(notebook).name} | {_SECONDS[notebook]:.0f} | {outcome} | {_metrics(notebook)} |")
    lines.append(f"\nTotal: {time.perf_counter() - _START:.0f} s.")
    output = Path("build") / "notebook-times.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
