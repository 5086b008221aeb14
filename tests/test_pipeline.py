"""Running averages, and the pipeline from a real file source through the ring buffer to prediction messages."""

import time

import numpy as np
import pytest

from conftest import poll
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
    want = engine.infer(windows(log_mel(load_audio(music_file))))
    pipeline.start()
    ended = lambda: sum(m["type"] == "status" and m["event"] == "ended" for m in messages)  # noqa: E731
    poll(lambda: all(s.seq == len(want) for s in streams) and ended() == 3, timeout=30, every=0.05)  # every window
    # through the engine thread, and every file's end reported
    pipeline.stop()
    for s in streams:
        got = [m for m in messages if m["type"] == "prediction" and m["stream"] == s.name]
        assert len(got) == len(want) and s.counters()["samples_overwritten"] == 0
        np.testing.assert_allclose([list(m["probabilities"].values()) for m in got], want, atol=1e-4)
        np.testing.assert_allclose(list(got[-1]["average"].values()), want.mean(0), atol=1e-4)
    assert ended() == 3
    batches = pipeline.metrics.registry.get_sample_value("streamgenre_engine_batch_size_sum")
    calls = pipeline.metrics.registry.get_sample_value("streamgenre_engine_batch_size_count")
    assert batches == 3 * len(want) and calls < batches  # windows of several streams went through together


def test_a_new_title_and_dead_air_start_a_new_average(music_file):
    """The running average belongs to one song: a new ICY title or dead air starts it afresh, talk only pauses it."""
    from streamgenre.content import MUSIC, SILENCE, SPEECH
    from streamgenre.content_stage import Content

    model = load_model()
    stream = Stream(FileSource("radio", music_file), "last:10")
    messages = []
    pipeline = Pipeline([stream], create_frontend("cpu"), create_engine(model, "onnx"), model.genres, messages.append)
    pop, rock = np.eye(10)[model.genres.index("pop")], np.eye(10)[model.genres.index("rock")]

    def window(probs, kind=MUSIC, title=None):
        stream.source.title = title
        pipeline._send_prediction(stream, probs, Content(kind, None), 0.0, time.monotonic(), -20.0)
        return messages[-1]

    for _ in range(5):
        window(pop, title="A - Pop song")
    assert window(rock, title="B - Rock song")["genre"] == "rock"  # a new title: the pop windows are forgotten
    window(rock, title="B - Rock song")
    assert window(pop, SPEECH, title="B - Rock song")["genre"] is None  # talk: no genre, the average waits
    assert window(pop, title="B - Rock song")["average"]["rock"] == pytest.approx(2 / 3, abs=1e-4)  # and resumes
    window(pop, SILENCE, title="B - Rock song")
    after = window(pop, title="B - Rock song")
    assert after["genre"] == "pop" and after["average"]["pop"] == 1.0  # the music after dead air starts anew


def test_every_nth_window_is_the_same_window_and_the_average_keeps_its_seconds(music_file):
    """`every = 3`: the windows classified are every third of the full set (the first, the fourth, ...), with the
    same probabilities, and `last:9` averages the last 3 of them: the same 9 steps of audio."""
    model = load_model()
    engine = create_engine(model)
    want = engine.infer(windows(log_mel(load_audio(music_file))))
    stream = Stream(FileSource("s", music_file, realtime=False), "last:9", every=3)
    messages = []
    pipeline = Pipeline([stream], create_frontend("cpu"), engine, model.genres, messages.append)
    pipeline.start()
    poll(lambda: stream.seq >= len(want[::3]), timeout=30, every=0.05)
    pipeline.stop()
    got = [m for m in messages if m["type"] == "prediction"]
    assert len(got) == len(want[::3])
    np.testing.assert_allclose([list(m["probabilities"].values()) for m in got], want[::3], atol=1e-4)
    np.testing.assert_allclose(list(got[-1]["average"].values()), want[::3][-3:].mean(0), atol=1e-4)
    assert np.allclose(np.diff([m["time"] for m in got]), 3 * 128 * 256 / 22050, atol=1e-3)
    assert Average("ema:15", 1.5, every=3)._keep == pytest.approx(0.5 ** (4.5 / 15))


def test_a_live_stream_that_fell_behind_skips_to_its_latest_window_and_counts_what_it_skipped(music_file):
    """A tick that finds 6 steps waiting in a live stream's ring classifies the latest window only (the step before
    it restarts the window: its audio is not adjacent to the last one classified), and counts the 4 skipped."""
    from streamgenre.sources import Source

    audio = load_audio(music_file)
    source = Source("live")
    stream = Stream(source, "last:10")
    step = PAPER.step_samples
    source.write(audio[: 2 * step + PAPER.n_fft])
    first = stream.poll()
    assert [s.completes for s in first] == [False, True]
    source.write(audio[2 * step + PAPER.n_fft : 8 * step + PAPER.n_fft])
    behind = stream.poll()
    assert [(s.number, s.completes) for s in behind] == [(7, False), (8, True)]
    assert stream.counters()["skipped_windows"] == 4
    np.testing.assert_array_equal(behind[1].audio, audio[7 * step : 7 * step + PAPER.step_span_samples])
    source.write(audio[8 * step + PAPER.n_fft : 9 * step + PAPER.n_fft])
    assert [(s.number, s.completes) for s in stream.poll()] == [(9, True)]  # on time again: every window
    fast = Stream(Source("fast"), "last:10")  # a file read as fast as it goes is not live: nothing is skipped
    fast.source.paced = False
    fast.source.write(audio[: 6 * step + PAPER.n_fft])
    assert [s.completes for s in fast.poll()] == [False] + [True] * 5 and fast.skipped == 0
