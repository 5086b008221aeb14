"""Inference engines, one module each behind one interface: `infer(windows, streams) -> probabilities`, and
`release_memory()` when fewer streams remain.

`onnx` (ONNX Runtime on the CPU) runs everywhere; `tensorrt` runs a plan built for this machine's NVIDIA GPU. The
engine is picked once at start; the rest of the program only calls `infer`.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..model import Model

ENGINES = ("auto", "tensorrt", "onnx")


class EngineError(RuntimeError):
    """An engine that cannot run here; the message is one line meant for the user."""


class Engine(Protocol):
    name: str
    description: str  # what it runs on and why it was chosen, said at start

    def infer(self, windows, streams: list[tuple[object, int]] | None = None) -> np.ndarray:
        """(N, n_mels, window_frames) float32 windows of the model's frontend, on the host or (CuPy) on the GPU ->
        (N, genres) on the host. `streams`, from the daemon: each window's (stream, window number), for an engine
        that carries a stream's convolution columns from one window to the next; the probabilities are the same."""

    def release_memory(self) -> None:
        """Give back what larger batches than the streams now make grew (called after streams were removed)."""


def create_engine(model: Model, kind: str = "auto", threads: int = 0, fp16: bool = False,
                  log: Callable[[str], None] = lambda message: None) -> Engine:
    """`onnx`, `tensorrt` (EngineError where it cannot run), or `auto`: TensorRT where it imports and a GPU is
    present, otherwise ONNX Runtime on the CPU. `threads` is ONNX Runtime's (0: every core); `fp16` TensorRT's
    precision; `log` hears about plan builds."""
    from .onnx import OnnxEngine

    if kind not in ENGINES:
        raise EngineError(f"--engine {kind!r}: use {', '.join(ENGINES)}")
    if kind == "onnx":
        return OnnxEngine(model, threads, "asked for")
    from .tensorrt import TensorRTEngine, tensorrt_unavailable

    why = tensorrt_unavailable()
    if why is None:
        try:
            return TensorRTEngine(model, fp16, log=log, chosen="auto" if kind == "auto" else "asked for")
        except EngineError as e:
            why = str(e)
    if kind == "tensorrt":
        raise EngineError(f"--engine tensorrt: {why}")
    return OnnxEngine(model, threads, f"auto: {why}")
