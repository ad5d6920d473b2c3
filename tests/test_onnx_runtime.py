"""The kit's onnxruntime sessions: CPU, quiet, and without spinning worker threads."""

import numpy as np
import pytest
import torch

from ecmm.export import export_onnx
from ecmm.onnx_runtime import onnx_session, onnxruntime_installed


def test_session_runs_the_export_and_does_not_spin(tmp_path):
    layer = torch.nn.Linear(3, 2)
    path = export_onnx(layer, (torch.ones(1, 3),), tmp_path / "linear.onnx", input_names=["x"],
                       dynamic_axes={"x": {0: "batch"}})
    session = onnx_session(path, num_threads=1)
    inputs = np.arange(6, dtype=np.float32).reshape(2, 3)
    (out,) = session.run(None, {"x": inputs})
    np.testing.assert_allclose(out, layer(torch.from_numpy(inputs)).detach().numpy(), atol=1e-6)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_a_missing_onnxruntime_is_named_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert not onnxruntime_installed()
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        onnx_session(tmp_path / "any.onnx")
