"""onnxruntime sessions for the kit's exported networks (no torch imported).

A session's worker threads spin for a while after each run by default, waiting for more work; in a
process that also runs torch (a server answering photo queries, a benchmark) the spinning threads
take the CPU from torch's own. The kit's sessions do not spin.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["onnxruntime_installed", "onnx_session"]


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported (it is a dependency; an install may lack it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_session(path: str | Path, num_threads: int | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` on the CPU for an exported file, without spinning threads.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads (None: onnxruntime's default, one per core).

    Returns:
        The session; call ``session.run(None, {name: array})``.

    Raises:
        ValueError: onnxruntime is not installed (the message says how to install it).
    """
    if not onnxruntime_installed():
        raise ValueError("onnxruntime is not installed: pip install onnxruntime (or skip the ONNX check)")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if num_threads:
        options.intra_op_num_threads = num_threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
