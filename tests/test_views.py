"""Augmented views for distillation: each augmentation keeps shape and range; a view never trains where one of its
recordings is held out; the teacher labels the view itself."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import synth_music, write_audio
from streamgenre.audio import N_MELS, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES
from train.data import Track
from train.views import (PEAK, SHORT_SAMPLES, Views, build_views, change_speed, eq_tilt, gain, limit, make_view, mix)


@pytest.fixture(scope="module")
def window():
    return synth_music(3.0, seed=3)[:WINDOW_SAMPLES]


def centroid(x: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE) * power).sum() / power.sum())


@pytest.mark.parametrize("augment", [lambda x: gain(x, 6.0), lambda x: gain(x, -6.0), lambda x: eq_tilt(x, 6.0),
                                     lambda x: eq_tilt(x, -6.0), lambda x: change_speed(np.tile(x, 2), 1.06, len(x)),
                                     lambda x: change_speed(x, 0.94, len(x)), lambda x: mix(x, x[::-1], 0.4)])
def test_augmentations_keep_shape_and_range(window, augment):
    out = limit(augment(window))
    assert out.shape == window.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out).max() <= PEAK + 1e-6 and np.abs(out).max() > 0.05


def test_augmentations_do_what_they_say(window):
    assert centroid(eq_tilt(window, 6.0)) > centroid(window) > centroid(eq_tilt(window, -6.0))
    tone = np.sin(2 * np.pi * 440 * np.arange(2 * WINDOW_SAMPLES) / SAMPLE_RATE).astype(np.float32)
    faster = change_speed(tone, 1.06, WINDOW_SAMPLES)
    peak = np.fft.rfftfreq(WINDOW_SAMPLES, 1 / SAMPLE_RATE)[np.abs(np.fft.rfft(faster)).argmax()]
    assert peak == pytest.approx(440 * 1.06, abs=1.0)
    np.testing.assert_allclose(eq_tilt(window, 0.0), window, atol=1e-5)
    np.testing.assert_allclose(np.abs(gain(window, 6.0)).max() / np.abs(window).max(), 10 ** 0.3, rtol=1e-5)
    loud = gain(window, 40.0)
    assert np.abs(limit(loud)).max() == pytest.approx(PEAK) and np.abs(limit(window)).max() == np.abs(window).max()


def test_views_are_windows_or_short_clips_of_the_tracks_they_name():
    tracks = [Track(Path(f"/v/{g}.wav"), g, f"gtzan:{g}", "t") for g in ("a", "b", "c")]
    audio = [synth_music(s, seed=i) for i, s in enumerate((4.0, 2.0, 30.0))]  # one shorter than a window
    rng = np.random.default_rng(0)
    views = [make_view(tracks, audio, rng) for _ in range(60)]
    assert {len(v.sources) for v in views} == {1, 2}
    for v in views:
        assert SHORT_SAMPLES[0] <= len(v.audio) <= WINDOW_SAMPLES and np.abs(v.audio).max() <= PEAK + 1e-6
        assert set(v.sources) <= {t.recording for t in tracks} and v.genre == v.sources[0].split(":")[1]
    assert any(len(v.audio) == WINDOW_SAMPLES for v in views) and any(len(v.audio) < WINDOW_SAMPLES for v in views)


def test_a_view_trains_only_where_all_its_recordings_train():
    n = 4
    bank = Views(np.zeros((n, N_MELS, WINDOW_FRAMES), np.float16), np.arange(n * 3, dtype=np.float32).reshape(n, 3),
                 np.array([("gtzan:a", ""), ("gtzan:a", "gtzan:b"), ("extra:c", ""), ("gtzan:b", "")]),
                 np.array(["x", "x", "y", "y"]))
    label = lambda e: np.full((len(e), 2), 0.5)  # noqa: E731
    chosen = bank.training_views({"gtzan:a", "extra:c"}, label)
    assert [t.recording for t in chosen] == ["view:0", "view:2"]
    assert [t.own_label for t in chosen] == [True, False]  # the other dataset's labels are not GTZAN's
    assert all(t.soft.shape == (1, 2) and t.is_excerpt for t in chosen)
    assert len(bank.training_views({"gtzan:a", "gtzan:b", "extra:c"}, label)) == 4


@pytest.mark.skipif(not importlib.util.find_spec("musicnn"),
                    reason="musicnn's weights are not installed (pip install --no-deps musicnn==0.1.0)")
def test_the_teacher_labels_each_view(tmp_path):
    tracks = [Track(write_audio(tmp_path / f"{i}.wav", synth_music(5.0, seed=i, tempo=60 + 60 * i)), f"g{i}",
                    f"gtzan:{i}", "t") for i in range(2)]
    views = build_views(tracks, 6, seed=0, log=lambda *_: None, batch=4)
    assert views.mel.shape == (6, N_MELS, WINDOW_FRAMES) and views.embedding.shape == (6, 456)
    assert np.isfinite(views.embedding).all() and len(np.unique(views.embedding, axis=0)) == 6
