"""Running averages, and the pipeline from a real file source through the ring buffer to prediction messages."""

import time

import numpy as np
import pytest

from streamgenre.audio import load_audio
from streamgenre.frontend import PAPER
from streamgenre.backends import create_engine
from streamgenre.frontend import create_frontend, log_mel, windows
from streamgenre.model import load_model
from streamgenre.pipeline import Average, Pipeline, Stream
from streamgenre.sources import FileSource


def test_average_last_n():
    avg = Average("last:2")
    for p in ([1.0, 0.0], [0.0, 1.0], [0.0, 1.0]):
        value = avg.update(np.array(p))
    np.testing.assert_allclose(value, [0.0, 1.0])


def test_average_ema_has_the_given_half_life():
    avg = Average(f"ema:{2 * PAPER.step_seconds}")  # half-life of two windows
    avg.update(np.array([1.0, 0.0]))
    avg.update(np.array([0.0, 1.0]))
    value = avg.update(np.array([0.0, 1.0]))
    np.testing.assert_allclose(value, [0.5, 0.5])


def test_average_all():
    avg = Average("all")
    for p in ([1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]):
        value = avg.update(np.array(p))
    np.testing.assert_allclose(value, [0.25, 0.75])


@pytest.mark.parametrize("spec", ["last:0", "ema:-1", "all:3", "mean", "last:x"])
def test_average_refuses_bad_specs(spec):
    with pytest.raises(ValueError, match="use last:N"):
        Average(spec)


def test_pipeline_batches_streams_and_matches_whole_file_classification(music_file):
    model = load_model()
    engine = create_engine(model)
    streams = [Stream(FileSource(f"s{i}", music_file, realtime=False), "all") for i in range(3)]
    messages = []
    pipeline = Pipeline(streams, create_frontend("cpu"), engine, model.genres, messages.append)
    pipeline.start()
    deadline = time.monotonic() + 30
    ended = lambda: sum(m["type"] == "status" and m["event"] == "ended" for m in messages)  # noqa: E731
    while not (all(s.exhausted for s in streams) and ended() == 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    pipeline.stop()
    want = engine.infer(windows(log_mel(load_audio(music_file))))
    for s in streams:
        got = [m for m in messages if m["type"] == "prediction" and m["stream"] == s.name]
        assert len(got) == len(want) and s.counters()["samples_overwritten"] == 0
        np.testing.assert_allclose([list(m["probabilities"].values()) for m in got], want, atol=1e-4)
        np.testing.assert_allclose(list(got[-1]["average"].values()), want.mean(0), atol=1e-4)
    assert ended() == 3
    batches = pipeline.metrics.registry.get_sample_value("streamgenre_engine_batch_size_sum")
    calls = pipeline.metrics.registry.get_sample_value("streamgenre_engine_batch_size_count")
    assert batches == 3 * len(want) and calls < batches  # windows of several streams went through together
