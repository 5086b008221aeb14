"""ONNX Runtime on the CPU: the engine that runs everywhere.

Where the model splits (streamgenre/columns.py), a stream's windows after its first are computed from the columns its
previous window carried, which gives the same probabilities for about two thirds of the work; files and models that
do not split run whole.
"""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime

from ..columns import SplitError, StreamColumns, checked_sessions, split_model
from ..model import Model

CHUNK = 64  # windows per run: larger batches gain nothing on a CPU, and their activations (4 MB per window
# after the first convolution) outgrow the caches


@functools.cache
def shared_arena() -> None:
    """One CPU arena for every session of the process (the genre model, its split parts, the content network),
    growing by what is asked (not by powers of two), so that a shrink gives its unused regions back: the default
    per-session arenas kept the largest batch's activations for ever, even when asked to shrink."""
    memory = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                       onnxruntime.OrtMemType.DEFAULT)
    same_as_requested = 1  # arena_extend_strategy; -1: ONNX Runtime's default for the rest
    onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg(0, same_as_requested, -1, -1))


class OnnxEngine:
    name = "onnx"

    def __init__(self, model: Model, threads: int = 0, chosen: str = "asked for"):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle between ticks, not spinning
        options.add_session_config_entry("session.use_env_allocators", "1")  # one arena for all (shared_arena)
        shared_arena()

        def open_session(graph: str | bytes) -> onnxruntime.InferenceSession:
            return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

        self.session = open_session(str(model.path))
        try:
            split = split_model(model)
            self.first, self.next = checked_sessions(split, model.params, self.session, open_session)
        except SplitError as e:
            self.first = self.next = None
            streams = f"whole windows (the model does not split: {e})"
        else:
            streams = f"streams incrementally ({split.layout.new} new columns of {split.layout.columns} a window)"
        self.columns = StreamColumns()
        self._run_options: onnxruntime.RunOptions | None = None  # for the next infer only
        self.description = f"ONNX Runtime {onnxruntime.__version__} on the CPU ({chosen}); {streams}"

    def infer(self, windows, streams: list[tuple[object, int]] | None = None) -> np.ndarray:
        """(N, n_mels, window_frames) float32 windows -> (N, genres) probabilities. Windows from the GPU frontend
        (CuPy arrays) are copied to the host first. `streams`: each window's (stream, window number), for the
        columns carried from a stream's previous window."""
        if not isinstance(windows, np.ndarray):
            windows = windows.get()
        batch = np.ascontiguousarray(windows, dtype=np.float32)[:, None]
        options, self._run_options = self._run_options, None
        if streams is None or self.first is None:
            return run(self.session, {"mel": batch}, options)[0]
        whole, following, carried = self.columns.plan(streams)
        probabilities = None
        for session, indices, feeds in ((self.first, whole, {}), (self.next, following, {"carried": carried})):
            if indices:
                probs, columns = run(session, {"mel": batch[indices], **feeds}, options)
                self.columns.keep(streams, indices, columns)
                if probabilities is None:
                    probabilities = np.empty((len(batch), probs.shape[1]), np.float32)
                probabilities[indices] = probs
        return probabilities


    def release_memory(self) -> None:
        """The next infer shrinks the arena to what it uses: it keeps the activations of the largest batch it
        ever ran (4 MB a window). Turning the arena off would cost 30 % more time a window."""
        options = onnxruntime.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._run_options = options


def run(session: onnxruntime.InferenceSession, feeds: dict[str, np.ndarray],
        options: onnxruntime.RunOptions | None = None) -> list[np.ndarray]:
    """All outputs of a session for a batch, run CHUNK windows at a time."""
    n = len(next(iter(feeds.values())))
    parts = [session.run(None, {k: v[i : i + CHUNK] for k, v in feeds.items()}, options) for i in range(0, n, CHUNK)]
    return [np.concatenate(outputs) for outputs in zip(*parts)]
