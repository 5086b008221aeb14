"""TensorRT on an NVIDIA GPU: a plan built from the shipped ONNX model for this GPU, cached and reused.

A plan is only valid for one TensorRT version and one GPU model, so plans are cached under a name made of the ONNX
file's checksum, the GPU, its compute capability, the TensorRT version, the precision and the largest batch. A cached
plan that does not load or does not match the model is rebuilt, with a message. Inference takes the windows where they
are: on the GPU (from the GPU frontend, no copy through the host) or on the host (copied up once per batch).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..gpu import find_gpu, gpu_identity
from ..model import Model
from . import EngineError

INPUT = "mel"  # the ONNX model's input, (N, 1, n_mels, window_frames) of its frontend parameters
DEFAULT_MAX_BATCH = 1024  # windows per call; larger batches are split


def plan_cache() -> Path:
    """$STREAMGENRE_CACHE, systemd's $CACHE_DIRECTORY, or $XDG_CACHE_HOME/streamgenre (~/.cache/streamgenre)."""
    root = os.environ.get("STREAMGENRE_CACHE") or os.environ.get("CACHE_DIRECTORY")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamgenre"
    return Path(root) / "tensorrt"


def tensorrt_unavailable() -> str | None:
    """None where TensorRT imports and a GPU is present, else why not."""
    try:
        importlib.import_module("tensorrt")
    except ImportError as e:
        return f"TensorRT is not installed ({e}; pip install 'streamgenre[gpu]')"
    cupy, about = find_gpu()
    return None if cupy is not None else about


@dataclass(frozen=True)
class PlanKey:
    """What a plan is valid for; its file name in the cache."""

    model_sha256: str
    gpu: str
    capability: str
    tensorrt: str
    fp16: bool
    max_batch: int

    def filename(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9.]+", "-", self.gpu).strip("-")
        return (f"{self.model_sha256[:16]}-{gpu}-sm{self.capability}-trt{self.tensorrt}-"
                f"{'fp16' if self.fp16 else 'fp32'}-b{self.max_batch}.plan")

    def cached(self, cache: Path) -> list[Path]:
        """Plans in the cache for everything in this key but the batch size, the largest batch first."""
        prefix = replace(self, max_batch=0).filename()[: -len("0.plan")]
        found = [p for p in cache.glob(prefix + "*.plan") if p.stem[len(prefix) :].isdigit()]
        return sorted(found, key=_batch_of, reverse=True)


def plan_key(model: Model, fp16: bool, max_batch: int) -> PlanKey:
    import tensorrt as trt

    name, capability = gpu_identity()
    checksum = hashlib.sha256(model.path.read_bytes()).hexdigest()
    return PlanKey(checksum, name, capability, trt.__version__, fp16, max_batch)


def build_plan(model: Model, key: PlanKey, path: Path) -> None:
    """Build a plan for the model (explicit batch, one optimisation profile from 1 to key.max_batch) and write it
    atomically, so that a build cut short never leaves a truncated plan under the final name."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)  # TensorRT 8; the only mode since
    network = builder.create_network(0 if explicit is None else 1 << int(explicit))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {model.path}: {errors}")
    config = builder.create_builder_config()
    if key.fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineError(f"TensorRT {trt.__version__} has no FP16 builder flag (strongly typed networks only): "
                              "build an FP32 plan, or use TensorRT 10")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    window = _window_shape(model)
    profile.set_shape(INPUT, *((n, *window) for n in (1, min(256, key.max_batch), key.max_batch)))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError("TensorRT could not build a plan for this GPU (its log above says why)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    with partial.open("wb") as f:
        f.write(plan)
    os.replace(partial, path)


def load_plan(model: Model, fp16: bool = False, max_batch: int | None = None, rebuild: bool = False,
              cache: Path | None = None, log: Callable[[str], None] = print):
    """(deserialized engine, plan path, whether it was built now) for this model, GPU and TensorRT: the cached plan
    with the largest batch (at least max_batch when given), else a new one."""
    cache = cache or plan_cache()
    key = plan_key(model, fp16, max_batch or DEFAULT_MAX_BATCH)
    _, runtime = _runtime()
    candidates = [] if rebuild else [p for p in key.cached(cache) if _batch_of(p) >= (max_batch or 1)]
    for path in candidates[:1]:
        engine = _deserialize(runtime, path)
        problem = "cannot be loaded (corrupt, or from another build)" if engine is None else _mismatch(engine, model)
        if problem is None:
            return engine, path, False
        log(f"TensorRT plan {path} {problem}: rebuilding it")
        path.unlink(missing_ok=True)
        key = replace(key, max_batch=_batch_of(path))
    path = cache / key.filename()
    log(f"building a TensorRT plan for {key.gpu} ({'FP16' if fp16 else 'FP32'}, batches up to {key.max_batch}); "
        "this takes a minute, once")
    build_plan(model, key, path)
    engine = _deserialize(runtime, path)
    if engine is None or _mismatch(engine, model):
        raise EngineError(f"TensorRT built a plan it cannot load: {path}")
    return engine, path, True


@lru_cache(maxsize=None)
def _runtime():
    """One TensorRT logger and runtime for the process, alive as long as the engines they load."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.ERROR)
    return logger, trt.Runtime(logger)


def _batch_of(path: Path) -> int:
    return int(path.stem.rsplit("-b", 1)[1])


def _deserialize(runtime, path: Path):
    try:
        return runtime.deserialize_cuda_engine(path.read_bytes())
    except Exception:  # TensorRT raises or returns None depending on the version; both mean unusable
        return None


def _tensors(engine) -> tuple[list[str], list[str]]:
    """The plan's input and output tensor names, and its outputs alone."""
    import tensorrt as trt

    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return names, [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]


def _window_shape(model: Model) -> tuple[int, int, int]:
    """One window as the model takes it, after the batch dimension."""
    return 1, model.params.n_mels, model.params.window_frames


def _mismatch(engine, model: Model) -> str | None:
    """Why a loaded plan does not fit the model, or None."""
    names, outputs = _tensors(engine)
    if INPUT not in names or len(outputs) != 1:
        return f"has tensors {names}, not {INPUT!r} and one output"
    if tuple(engine.get_tensor_shape(INPUT))[1:] != _window_shape(model):
        return f"takes {tuple(engine.get_tensor_shape(INPUT))}, not (N, *{_window_shape(model)})"
    if engine.get_tensor_shape(outputs[0])[-1] != len(model.genres):
        return f"gives {engine.get_tensor_shape(outputs[0])[-1]} outputs for a model of {len(model.genres)} genres"
    return None


class TensorRTEngine:
    """Runs the plan with execute_async_v3 on its own CUDA stream, after the work already queued for the windows."""

    name = "tensorrt"

    def __init__(self, model: Model, fp16: bool = False, max_batch: int | None = None, cache: Path | None = None,
                 log: Callable[[str], None] = print, chosen: str = "asked for"):
        import cupy
        import tensorrt as trt

        self.cupy = cupy
        self.engine, self.plan, _ = load_plan(model, fp16, max_batch, cache=cache, log=log)
        self.context = self.engine.create_execution_context()
        self.output = _tensors(self.engine)[1][0]
        self.max_batch = int(self.engine.get_tensor_profile_shape(INPUT, 0)[2][0])
        self.genres = len(model.genres)
        self.window = _window_shape(model)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        _, about = find_gpu()
        self.description = (f"TensorRT {trt.__version__} {'FP16' if fp16 else 'FP32'} on {about}, batches up to "
                            f"{self.max_batch}, plan {self.plan} ({chosen})")

    def infer(self, windows, streams=None) -> np.ndarray:
        """(N, n_mels, window_frames) windows, CuPy or NumPy -> (N, genres) probabilities on the host. Windows are
        computed whole (the split graphs of streamgenre/columns.py are not built into plans yet)."""
        cp = self.cupy
        x = cp.ascontiguousarray(cp.asarray(windows, dtype=cp.float32))  # no copy for the GPU frontend's windows
        out = cp.empty((len(x), self.genres), cp.float32)
        queued = cp.cuda.get_current_stream().record()  # the frontend's kernels that produce x
        self.stream.wait_event(queued)
        for start in range(0, len(x), self.max_batch):
            chunk = x[start : start + self.max_batch]
            self.context.set_input_shape(INPUT, (len(chunk), *self.window))
            self.context.set_tensor_address(INPUT, chunk.data.ptr)
            self.context.set_tensor_address(self.output, out[start : start + len(chunk)].data.ptr)
            if not self.context.execute_async_v3(self.stream.ptr):
                raise EngineError("TensorRT failed to run the batch")
        self.stream.synchronize()
        return out.get()

    def release_memory(self) -> None:
        """CuPy's pool keeps the blocks of the largest batches; the ones not in use go back to the GPU."""
        self.stream.synchronize()
        self.cupy.get_default_memory_pool().free_all_blocks()
