"""Inference engines, one module each behind one interface: `infer(windows) -> probabilities`.

The engine is picked once at start; the rest of the program only calls `infer`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..model import Model


class Engine(Protocol):
    name: str
    description: str  # what it runs on, said at start

    def infer(self, windows: np.ndarray) -> np.ndarray: ...


def create_engine(model: Model, threads: int = 0) -> Engine:
    """The CPU engine (ONNX Runtime); `threads` 0 uses every core."""
    from .onnx import OnnxEngine

    return OnnxEngine(model, threads)
