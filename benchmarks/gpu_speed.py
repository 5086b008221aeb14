"""Frontend and engine throughput, in windows per second, on the CPU and (where present) the GPU.

    python benchmarks/gpu_speed.py [--model paper|musicnn] [--batches 1 1024] [--seconds 1.0]

Frontends, for the model's parameters: the daemon's form (one window = one new step of frames per stream,
`stream_windows`) and the file form (one window from its own audio), on NumPy and on CuPy, against librosa's
melspectrogram on the same window audio (the file form). Engines: ONNX Runtime on the CPU and, where TensorRT imports, TensorRT
FP32 and FP16 plans, fed from the host and straight from the GPU frontend. Runs anywhere; what a machine lacks is
skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from streamgenre.backends import create_engine
from streamgenre.backends.tensorrt import tensorrt_unavailable
from streamgenre.frontend import LOGS, Frontend, create_frontend, limit_blas_threads, mel_frames
from streamgenre.gpu import find_gpu
from streamgenre.model import load_model


def rate(run, count: int, seconds: float, sync=lambda: None) -> float:
    """Windows per second of `run()`, which makes `count` windows; warmed up, repeated for at least `seconds`."""
    run()
    sync()
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        run()
        calls += 1
    sync()
    return count * calls / (time.perf_counter() - started)


def frontend_rows(frontend: Frontend, batch: int, seconds: float, sync) -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    spans = (0.1 * rng.standard_normal((batch, frontend.params.step_span_samples))).astype(np.float32)
    window_audio = (0.1 * rng.standard_normal((batch, frontend.params.window_samples))).astype(np.float32)
    frontend.open_streams(batch)
    ids = list(range(batch))
    return [
        (f"{frontend.name} frontend, streams (one step per window)",
         rate(lambda: frontend.stream_windows(ids, spans), batch, seconds, sync)),
        (f"{frontend.name} frontend, windows from their own audio",
         rate(lambda: _file_batch(frontend, window_audio), batch, seconds, sync)),
    ]


def _file_batch(frontend: Frontend, window_audio: np.ndarray):
    """Windows of a batch of window-long signals in one call: the frontend's frames function on the whole batch."""
    return mel_frames(frontend.xp.asarray(window_audio), frontend.params, frontend.xp).transpose(0, 2, 1)


def librosa_row(librosa, params, batch: int, seconds: float) -> tuple[str, float]:
    window_audio = (0.1 * np.random.default_rng(0).standard_normal((batch, params.window_samples))).astype(np.float32)

    def run():
        return LOGS[params.log](np, librosa.feature.melspectrogram(
            y=window_audio, sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
            n_mels=params.n_mels, fmax=params.f_max, center=False))

    return f"librosa {librosa.__version__} melspectrogram + {params.log}, windows from their own audio", rate(
        run, batch, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paper", help="paper, musicnn or an ONNX file")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 1024])
    parser.add_argument("--seconds", type=float, default=1.0, help="least time spent on each figure")
    args = parser.parse_args()
    limit_blas_threads()  # as the CLI does
    cupy, gpu = find_gpu()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; GPU: {gpu}")
    sync = cupy.cuda.get_current_stream().synchronize if cupy is not None else lambda: None
    model = load_model(args.model)
    print(f"model: {model.name}")
    frontends = [(Frontend(model.params), lambda: None)] + (
        [(create_frontend("gpu", model.params), sync)] if cupy is not None else [])
    engines = [("onnx", create_engine(model, "onnx"))]
    no_tensorrt = tensorrt_unavailable()
    if no_tensorrt is None:
        from streamgenre.backends.tensorrt import TensorRTEngine

        engines += [(f"tensorrt {p}", TensorRTEngine(model, fp16=p == "fp16")) for p in ("fp32", "fp16")]
    else:
        print(f"TensorRT skipped: {no_tensorrt}")
    try:
        import librosa
    except ImportError as e:  # the GPU machines have no librosa: the reference row is left out, not the benchmark
        librosa = None
        print(f"librosa skipped: {e}")
    print(f"{'what':80} {'batch':>6} {'windows/s':>12}")
    for batch in args.batches:
        rows = [row for f, s in frontends for row in frontend_rows(f, batch, args.seconds, s)]
        if librosa is not None:
            rows.append(librosa_row(librosa, model.params, batch, args.seconds))
        host = np.asarray(_file_batch(Frontend(model.params), (0.1 * np.random.default_rng(1).standard_normal(
            (batch, model.params.window_samples))).astype(np.float32)))
        for name, engine in engines:
            rows.append((f"engine {name}, windows from the host",
                         rate(lambda: engine.infer(host), batch, args.seconds)))
            if cupy is not None and name.startswith("tensorrt"):
                device = cupy.asarray(host)
                rows.append((f"engine {name}, windows already on the GPU",
                             rate(lambda: engine.infer(device), batch, args.seconds)))
        for name, value in rows:
            print(f"{name:80} {batch:6d} {value:12,.0f}", flush=True)
    step = model.params.step_seconds
    print(f"a window is {step:.3f} s of new audio per stream: windows/s x {step:.3f} = real-time streams")


if __name__ == "__main__":
    main()
