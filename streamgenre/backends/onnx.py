"""ONNX Runtime on the CPU: the engine that runs everywhere."""

from __future__ import annotations

import numpy as np
import onnxruntime

from ..model import Model


CHUNK = 64  # windows per run: larger batches gain nothing on a CPU, and their activations (4 MB per window
# after the first convolution) outgrow the caches


class OnnxEngine:
    name = "onnx"

    def __init__(self, model: Model, threads: int = 0, chosen: str = "asked for"):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle between ticks, not spinning
        self.session = onnxruntime.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        self.description = f"ONNX Runtime {onnxruntime.__version__} on the CPU ({chosen})"

    def infer(self, windows) -> np.ndarray:
        """(N, n_mels, window_frames) float32 windows -> (N, genres) probabilities. Windows from the GPU frontend
        (CuPy arrays) are copied to the host first."""
        if not isinstance(windows, np.ndarray):
            windows = windows.get()
        batch = np.ascontiguousarray(windows, dtype=np.float32)[:, None]
        return np.concatenate([self.session.run(None, {"mel": batch[i : i + CHUNK]})[0]
                               for i in range(0, len(batch), CHUNK)])
