"""The GPU path: the CuPy frontend, the TensorRT engine and its plan cache, and choosing between them and the CPU.

GPU tests skip with the reason where CuPy finds no GPU or TensorRT does not import; `benchmarks/gpu_check.sh` runs
them with the GPU benchmarks on a machine that has one. The errors for asking what is not here run everywhere else.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
from onnxruntime import __version__ as ort_version

from conftest import SHARED_MUSIC, poll, step_spans, synth_music, write_audio
from daemon import running_daemon
from streamgenre import audio
from streamgenre.backends import create_engine
from streamgenre.backends.tensorrt import PlanKey, tensorrt_unavailable
from streamgenre.frontend import Frontend, create_frontend, log_mel, windows
from streamgenre.gpu import find_gpu
from streamgenre.model import SHIPPED, load_model
from streamgenre.pipeline import Pipeline, Stream
from streamgenre.sources import FileSource

CUPY, GPU = find_gpu()
NO_TENSORRT = tensorrt_unavailable()
needs_gpu = pytest.mark.skipif(CUPY is None, reason=f"no GPU for the CuPy frontend: {GPU}")
needs_tensorrt = pytest.mark.skipif(NO_TENSORRT is not None, reason=f"no TensorRT engine here: {NO_TENSORRT}")


def streamgenre(*args, env=None):
    return subprocess.run([sys.executable, "-m", "streamgenre", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def assert_close_relative(got, want, tolerance):
    """Within `tolerance` of the spectrogram's range, and element by element where the value is audible."""
    assert got.shape == want.shape
    assert np.abs(got - want).max() / np.abs(want).max() < tolerance
    audible = want > 1e-2
    assert (np.abs(got - want)[audible] / want[audible]).max() < tolerance


# --- asking for what is not here: one line and exit 2 ---

@pytest.mark.skipif(NO_TENSORRT is None, reason="TensorRT runs here")
def test_tensorrt_asked_for_where_it_cannot_run(tmp_path):
    track = write_audio(tmp_path / "a.wav", synth_music(4.0))
    run = streamgenre("classify", "--engine", "tensorrt", track)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert run.stderr.startswith(f"streamgenre: error: --engine tensorrt: {NO_TENSORRT}")
    build = streamgenre("engine", "build")
    assert build.returncode == 2
    assert build.stderr == f"streamgenre: error: cannot build a TensorRT plan: {NO_TENSORRT}\n"


@pytest.mark.skipif(CUPY is not None, reason="a GPU is here")
def test_gpu_frontend_asked_for_where_there_is_none(tmp_path):
    track = write_audio(tmp_path / "a.wav", synth_music(4.0))
    run = streamgenre("classify", "--frontend", "gpu", track)
    assert run.returncode == 2 and run.stderr == f"streamgenre: error: --frontend gpu: {GPU}\n"


def test_unknown_engine_is_refused(tmp_path):
    run = streamgenre("classify", "--engine", "cuda", tmp_path / "a.wav")
    assert run.returncode == 2 and run.stderr == "streamgenre: error: --engine 'cuda': use auto, tensorrt, onnx\n"


def test_daemon_says_what_it_took_and_why(music_file):
    with running_daemon(str(music_file), "--fast") as (_, proc):
        time.sleep(1.0)
    log = proc.stdout.read()
    engine = "TensorRT" if NO_TENSORRT is None else re.escape(
        f"ONNX Runtime {ort_version} on the CPU (auto: {NO_TENSORRT})")
    frontend = "CuPy .* [(]auto[)]" if CUPY is not None else re.escape(f"NumPy on the CPU (auto: {GPU})")
    assert re.search(f"engine: {engine}", log) and re.search(f"frontend: {frontend}", log), log


def test_plan_cache_names_everything_a_plan_depends_on(tmp_path):
    key = PlanKey("ab" * 32, "NVIDIA H100 80GB HBM3", "9.0", "10.7.0", False, 1024)
    assert key.filename() == "abababababababab-NVIDIA-H100-80GB-HBM3-sm9.0-trt10.7.0-fp32-b1024.plan"
    from dataclasses import replace

    variants = [replace(key, **{field: value}) for field, value in (
        ("model_sha256", "cd" * 32), ("gpu", "NVIDIA A100"), ("capability", "8.0"), ("tensorrt", "10.8.0"),
        ("fp16", True))]
    for k in [key, replace(key, max_batch=256), replace(key, max_batch=4096), *variants]:
        (tmp_path / k.filename()).write_bytes(b"plan")
    assert [p.name for p in key.cached(tmp_path)] == [replace(key, max_batch=b).filename() for b in (4096, 1024, 256)]
    assert len({k.filename() for k in variants}) == len(variants)


# --- the CuPy frontend ---

MODELS = pytest.mark.parametrize("model", SHIPPED)


def signals(rate: int) -> list[np.ndarray]:
    real = [audio.load_audio(p, rate=rate)[: 30 * rate] for p in SHARED_MUSIC[:1]]
    return [synth_music(20.0, rate=rate), *real]


@needs_gpu
@MODELS
def test_gpu_frontend_computes_the_cpu_frontend(model):
    params = load_model(model).params
    cpu, gpu = Frontend(params), create_frontend("gpu", params)
    for x in signals(params.sample_rate):
        assert_close_relative(gpu.file_windows(x).get(), cpu.file_windows(x), 1e-4)


@needs_gpu
@MODELS
def test_gpu_frontend_batches_streams_like_the_cpu_frontend(model):
    """Three streams: their first two steps in one batch, then one step of each per batch."""
    params = load_model(model).params
    music = synth_music(20.0, rate=params.sample_rate)
    steps = [step_spans(x, params) for x in (music, music[::-1].copy(), 0.25 * music)]
    batches = [[(i, 0) for i in range(3)] + [(i, 1) for i in range(3)]]
    batches += [[(i, k) for i in range(3)] for k in range(2, len(steps[0]))]
    cpu, gpu = Frontend(params), create_frontend("gpu", params)
    for f in (cpu, gpu):
        f.open_streams(3)
    for batch in batches:
        ids, spans = [i for i, _ in batch], np.stack([steps[i][k] for i, k in batch])
        assert_close_relative(gpu.stream_windows(ids, spans).get(), cpu.stream_windows(ids, spans), 1e-4)


@needs_gpu
def test_pipeline_with_the_gpu_frontend_matches_whole_file_classification(music_file):
    model = load_model()
    engine = create_engine(model, "auto")
    streams = [Stream(FileSource(f"s{i}", music_file, realtime=False), "all") for i in range(3)]
    messages = []
    pipeline = Pipeline(streams, create_frontend("gpu"), engine, model.genres, messages.append)
    pipeline.start()
    poll(lambda: all(s.exhausted for s in streams), timeout=60, every=0.05)
    time.sleep(0.3)
    pipeline.stop()
    want = create_engine(model, "onnx").infer(windows(log_mel(audio.load_audio(music_file))))
    for s in streams:
        got = [m for m in messages if m["type"] == "prediction" and m["stream"] == s.name]
        assert len(got) == len(want)
        np.testing.assert_allclose([list(m["probabilities"].values()) for m in got], want, atol=1e-3)


# --- the TensorRT engine ---

@pytest.fixture(scope="module")
def plan_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("plans")


@pytest.fixture(scope="module")
def test_windows():
    x = np.concatenate([synth_music(20.0, seed=s) for s in range(3)])
    return windows(log_mel(x))


@needs_tensorrt
@MODELS
@pytest.mark.parametrize("fp16, tolerance", [(False, 1e-3), (True, 1e-2)])
def test_tensorrt_agrees_with_onnx_runtime(plan_cache, model, fp16, tolerance):
    from streamgenre.backends.tensorrt import TensorRTEngine

    model = load_model(model)
    x = np.concatenate([synth_music(20.0, rate=model.params.sample_rate, seed=s) for s in range(3)])
    host_windows = Frontend(model.params).file_windows(x)
    want = create_engine(model, "onnx").infer(host_windows)
    trt = TensorRTEngine(model, fp16, cache=plan_cache)
    np.testing.assert_allclose(trt.infer(host_windows), want, atol=tolerance)
    gpu_windows = create_frontend("gpu", model.params).file_windows(x)
    np.testing.assert_allclose(trt.infer(gpu_windows), want, atol=tolerance)  # straight from the GPU frontend


@needs_tensorrt
def test_the_content_network_on_tensorrt_agrees_with_onnx_runtime(plan_cache):
    """The content stage runs on the genre model's engine: its TensorRT plan gives ONNX Runtime's probabilities."""
    from streamgenre.backends.tensorrt import TensorRTEngine
    from streamgenre.content import content_features, file_patches, load_content_model, network_input
    from streamgenre.content_stage import ContentStage

    model = load_content_model()
    x16 = np.concatenate([synth_music(10.0, rate=16000, seed=s) for s in range(2)])
    patches, finite = network_input(file_patches(content_features(x16, model.params)[0], model.params))
    want = create_engine(model, "onnx").infer(patches[finite])
    trt = TensorRTEngine(model, False, cache=plan_cache)
    np.testing.assert_allclose(trt.infer(patches[finite]), want, atol=1e-3)
    stage = ContentStage(model, trt, 1.486)
    assert stage.score((patches[:4], finite[:4]), 4).shape == (4, 1, 3)


@needs_tensorrt
def test_batches_larger_than_the_plan_are_split(plan_cache, test_windows):
    from streamgenre.backends.tensorrt import TensorRTEngine

    model = load_model()
    trt = TensorRTEngine(model, max_batch=4, cache=plan_cache / "small")
    assert trt.max_batch >= 4 and len(test_windows) > trt.max_batch
    np.testing.assert_allclose(trt.infer(test_windows), create_engine(model, "onnx").infer(test_windows), atol=1e-3)


@needs_tensorrt
def test_engine_build_caches_reuses_and_rebuilds_a_corrupt_plan(tmp_path):
    env = {**__import__("os").environ, "STREAMGENRE_CACHE": str(tmp_path)}
    first = streamgenre("engine", "build", "--max-batch", "64", env=env)
    assert first.returncode == 0 and "built:" in first.stdout, first.stderr
    plan = next((tmp_path / "tensorrt").glob("*-b64.plan"))
    again = streamgenre("engine", "build", "--max-batch", "64", env=env)
    assert again.returncode == 0 and again.stdout.strip() == f"already cached: {plan}"
    plan.write_bytes(b"not a plan")
    repaired = streamgenre("engine", "build", "--max-batch", "64", env=env)
    assert repaired.returncode == 0 and "cannot be loaded" in repaired.stdout and "built:" in repaired.stdout
    assert plan.stat().st_size > 1000
