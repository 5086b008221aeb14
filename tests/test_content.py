"""The content stage: the port of inaSpeechSegmenter against the original, its smoothing, and noise, hum, silence and
DC never being a genre in `classify`; real files through the real decoder."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED, synth_music, synth_speech, write_audio
from streamgenre.backends import create_engine
from streamgenre.content import (MUSIC, NOISE, SILENCE, SPEECH, ContentParams, OnlineSmoother, content_features,
                                 file_patches, load_content_model, network_input, runs, segment)
from streamgenre.model import ModelError, load_model, shipped_model_path

MEDIA = SHARED / "models" / "inaspeechsegmenter" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"inaSpeechSegmenter's test media are not at {MEDIA}")
ORIGINAL_LABELS = {"male": SPEECH, "female": SPEECH, "speech": SPEECH, "music": MUSIC, "noise": NOISE,
                   "noEnergy": SILENCE}


@pytest.fixture(scope="module")
def content():
    model = load_content_model()
    return model, create_engine(model, "onnx")


def our_segments(path, content) -> list[tuple[str, float, float]]:
    import soundfile

    model, engine = content
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    units = segment(audio, engine, model.params, silence_db=None).labels  # the original's energy rule
    return [(label, 0.02 * a, 0.02 * b) for label, a, b in runs(units)]


def assert_same_segments(ours, theirs, tolerance=0.1):
    assert [label for label, _, _ in ours] == [label for label, _, _ in theirs]
    for (_, a, b), (_, c, d) in zip(ours, theirs):
        assert abs(a - c) <= tolerance and abs(b - d) <= tolerance


@needs_media
@pytest.mark.parametrize("name", ["musanmix", "silence2sec"])
def test_the_port_segments_the_original_test_media_as_the_original_did(name, content):
    """The original's own output (its unit-test references, `vad_engine='smn'`) on its test files."""
    with open(MEDIA / f"{name}-smn-gender.csv") as f:
        theirs = [(ORIGINAL_LABELS[r["labels"]], float(r["start"]), float(r["stop"]))
                  for r in csv.DictReader(f, delimiter="\t")]
    assert_same_segments(our_segments(MEDIA / f"{name}.wav", content), theirs)


TENSORFLOW = importlib.util.find_spec("tensorflow") and importlib.util.find_spec("inaSpeechSegmenter")


@needs_media
@pytest.mark.skipif(not TENSORFLOW, reason="the original needs TensorFlow and inaSpeechSegmenter 0.8.0 (pip install "
                    "tensorflow-cpu tf_keras; pip install --no-deps inaSpeechSegmenter==0.8.0): not installed here")
@pytest.mark.parametrize("name", ["musanmix", "lamartine"])
def test_the_port_equals_the_original_running_in_tensorflow(name, content, tmp_path):
    """Features, network outputs and segments against inaSpeechSegmenter 0.8.0 itself, run in a subprocess with
    the shared weights in its Keras cache (so nothing is downloaded)."""
    cache = tmp_path / ".keras" / "inaSpeechSegmenter"
    cache.mkdir(parents=True)
    (cache / "keras_speech_music_noise_cnn.hdf5").symlink_to(SHARED / "models/inaspeechsegmenter/"
                                                              "keras_speech_music_noise_cnn.hdf5")
    script = f"""
import numpy as np, soundfile
from inaSpeechSegmenter import Segmenter
from inaSpeechSegmenter.segmenter import _media2feats, _get_patches
seg = Segmenter(vad_engine='smn', detect_gender=False, ffmpeg=None)
path = {str(MEDIA / f"{name}.wav")!r}
mspec, loge, _ = _media2feats(path, None, None, None)
patches, finite = _get_patches(mspec[:, :21].copy(), 68, 2)
probs = seg.vad.nn.predict(np.expand_dims(patches[finite], 3), batch_size=256, verbose=0)
segments = np.array([(l, s, e) for l, s, e in seg(path)], dtype=object)
np.savez({str(tmp_path / "original.npz")!r}, mspec=mspec, loge=loge, finite=finite, probs=probs, segments=segments)
"""
    env = dict(os.environ, HOME=str(tmp_path), TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    original = np.load(tmp_path / "original.npz", allow_pickle=True)
    import soundfile

    model, engine = content
    audio = soundfile.read(MEDIA / f"{name}.wav", dtype="float32")[0]
    mspec, log_energy = content_features(audio, model.params)
    finite = np.isfinite(original["mspec"])
    assert (np.isfinite(mspec) == finite).all()
    np.testing.assert_allclose(mspec[finite], original["mspec"][finite], atol=1e-4)
    np.testing.assert_allclose(log_energy, original["loge"], atol=1e-4)
    x, scored = network_input(file_patches(mspec, model.params))
    assert (scored == original["finite"]).all()
    np.testing.assert_allclose(engine.infer(x[scored]), original["probs"], atol=1e-4)
    theirs = [(ORIGINAL_LABELS[label], float(a), float(b)) for label, a, b in original["segments"]]
    assert_same_segments(our_segments(MEDIA / f"{name}.wav", content), theirs)


def test_the_content_model_carries_its_features_and_refuses_other_models(tmp_path):
    model = load_content_model()
    assert model.genres == (SPEECH, MUSIC, NOISE) and model.params == ContentParams()
    with pytest.raises(ModelError, match="not a streamgenre content model"):
        load_content_model(shipped_model_path("paper"))
    with pytest.raises(ModelError, match="no streamgenre metadata"):
        load_model(model.path)
    (tmp_path / "broken.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelError):
        load_content_model(tmp_path / "broken.onnx")


def test_the_online_smoother_holds_against_one_odd_patch_and_follows_a_change():
    params = ContentParams()
    smoother = OnlineSmoother(params, units=37)  # a patch for every 0.74 s, two a window step
    music, speech = np.array([0.05, 0.9, 0.05]), np.array([0.9, 0.05, 0.05])
    states = [smoother.update(p) for p in [music] * 6 + [speech] + [music] * 3]
    assert states == [1] * 10  # one patch of speech does not switch
    states = [smoother.update(speech) for _ in range(6)]
    assert states[0] == 1 and states[-1] == 0 and states == sorted(states, reverse=True)  # switches, once
    smoother.reset()
    assert smoother.update(np.array([0.1, 0.1, 0.8])) == 2  # after a reset the first patch decides


def classify_json(*paths, extra=()):
    run = subprocess.run([sys.executable, "-m", "streamgenre", "classify", "--json", *extra, *map(str, paths)],
                         capture_output=True, text=True, timeout=300)
    return run, [json.loads(line) for line in run.stdout.splitlines()]


def test_noise_hum_silence_and_dc_are_never_a_genre_in_classify(tmp_path):
    rate, seconds = 22050, 20
    t = np.arange(seconds * rate) / rate
    rng = np.random.default_rng(1)
    signals = {
        "white": np.clip(rng.standard_normal(len(t)), -1, 1),  # full scale
        "hiss": 10 ** (-48 / 20) * rng.standard_normal(len(t)),
        "hum": 0.3 * np.sin(2 * np.pi * 50 * t),
        "silence": np.zeros(len(t)),
        "dc": np.full(len(t), 0.3),
    }
    paths = [write_audio(tmp_path / f"{name}.wav", x.astype(np.float32)) for name, x in signals.items()]
    run, results = classify_json(*paths, extra=["--timeline"])
    assert run.returncode == 0, run.stderr
    for name, result in zip(signals, results):
        assert result["genre"] is None and result["probabilities"] is None and result["music_windows"] == 0, name
        assert all(w["content"] != MUSIC for w in result["timeline"]), name
        kinds = result["content"]
        assert sum(kinds.values()) == pytest.approx(seconds, abs=0.05) and kinds[MUSIC] == 0, name
        expected = SILENCE if name in ("silence", "dc") else NOISE
        assert kinds[expected] >= 0.75 * seconds, (name, kinds)


def test_classify_names_a_genre_for_the_music_alone(tmp_path):
    talk_then_music = np.concatenate([synth_speech(15.0, seed=3), synth_music(15.0, seed=3)])
    paths = [write_audio(tmp_path / "talk.wav", synth_speech(20.0, seed=2)),
             write_audio(tmp_path / "show.wav", talk_then_music),
             write_audio(tmp_path / "music.wav", synth_music(20.0, seed=4)),
             tmp_path / "missing.wav"]
    run, (talk, show, music) = classify_json(*paths, extra=["--timeline"])
    assert run.returncode == 1 and "missing.wav: no such file" in run.stderr  # the others still classified
    assert talk["genre"] is None and talk["content"][SPEECH] > 10 and talk["content"][MUSIC] == 0
    assert music["genre"] is not None and music["content"][MUSIC] > 18
    assert show["content"][SPEECH] > 8 and show["content"][MUSIC] > 12  # the rest: pauses between words
    timeline = show["timeline"]
    assert [w["content"] for w in timeline[1:8]] == [SPEECH] * 7 and [w["content"] for w in timeline[-8:]] == [MUSIC] * 8
    assert show["music_windows"] == sum(w["content"] == MUSIC for w in timeline) >= 8
    assert sum(show["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    table = subprocess.run([sys.executable, "-m", "streamgenre", "classify", *map(str, paths[:3])],
                           capture_output=True, text=True, timeout=300).stdout.splitlines()
    assert table[0].split()[:3] == ["file", "content", "genre"]
    assert table[1].split()[1] == "speech" and table[1].split()[-4] == "-"  # no genre for talk



def test_a_daemon_fed_talk_music_and_silence_says_so_and_logs_it(tmp_path):
    """Real daemon, real files, a real WebSocket client, the genre log in SQLite: talk, then music, then dead air
    come out in that order, as messages and as segments; the genre average stands still during talk."""
    import signal

    from daemon import collect, predictions, running_daemon
    from streamgenre.history.store import read_segments

    rate = 22050
    show = np.concatenate([synth_speech(9.0, seed=5), synth_music(9.0, seed=5), np.zeros(8 * rate, np.float32)])
    music_then_talk = np.concatenate([synth_music(10.0, seed=6), synth_speech(12.0, seed=6)])
    history = tmp_path / "history.sqlite3"
    config = tmp_path / "streamgenre.toml"
    config.write_text(f'history = "{history}"\nhistory_hold_seconds = 3.0\n'
                      f'[[source]]\nname = "show"\nfile = "{write_audio(tmp_path / "show.wav", show)}"\n'
                      f'[[source]]\nname = "mt"\nfile = "{write_audio(tmp_path / "mt.wav", music_then_talk)}"\n')
    def ended(ms: list[dict]) -> bool:  # the last window of each file has been sent
        return all(any(m["type"] == "prediction" and m["stream"] == name and m["time"] > len(audio) / rate - 1.5
                       for m in ms) for name, audio in (("show", show), ("mt", music_then_talk)))

    with running_daemon("--config", str(config), "--once") as (port, proc):  # in real time: a client sees them all
        got = collect(port, ended, timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    messages = predictions(got, "show")
    assert all(m["content"] in (MUSIC, SPEECH, NOISE, SILENCE) for m in messages)
    assert all((m["genre"] is None) == (m["content"] != MUSIC) for m in messages)
    assert all(set(m["content_probabilities"]) == {SPEECH, MUSIC, NOISE} for m in messages)
    held = [kind for kind, a, b in runs([m["content"] for m in messages]) if b - a >= 2]
    assert [kind for kind, _, _ in runs(held)] == [SPEECH, MUSIC, SILENCE]
    assert all(m["dead_air"] == (m["content"] == SILENCE) for m in messages)

    later = predictions(got, "mt")
    talk = [i for i, m in enumerate(later) if m["content"] == SPEECH]
    assert len(talk) >= 4 and later[talk[0] - 1]["content"] == MUSIC
    frozen = later[talk[0] - 1]["average"]
    assert all(later[i]["average"] == frozen and later[i]["genre"] is None for i in talk)

    segments = [s for s in read_segments(str(history), "show") if s["end_time"] - s["start_time"] >= 3]
    assert [s["kind"] for s in segments] == [SPEECH, MUSIC, SILENCE] and segments[1]["genre"] is not None
    assert segments[0]["genre"] is None and segments[2]["genre"] is None


def test_noise_hum_and_dc_are_never_a_genre_in_the_daemon(tmp_path):
    from daemon import collect, predictions, running_daemon

    rate, seconds = 22050, 10
    t = np.arange(seconds * rate) / rate
    rng = np.random.default_rng(2)
    signals = {"white": np.clip(rng.standard_normal(len(t)), -1, 1), "hiss": 10 ** (-48 / 20) * rng.standard_normal(len(t)),
               "hum": 0.3 * np.sin(2 * np.pi * 50 * t), "dc": np.full(len(t), 0.3)}
    specs = [f"{name}={write_audio(tmp_path / f'{name}.wav', x.astype(np.float32))}" for name, x in signals.items()]
    enough = lambda ms: all(len(predictions([(0, m) for m in ms], n)) >= 4 for n in signals)  # noqa: E731
    with running_daemon(*specs) as (port, _):
        got = collect(port, enough, timeout=30)
    for name in signals:
        messages = predictions(got, name)
        assert len(messages) >= 4 and all(m["genre"] is None and m["confidence"] is None for m in messages), name
        assert {m["content"] for m in messages} == {SILENCE if name == "dc" else NOISE}, name
        assert all(np.isfinite(list(m["content_probabilities"].values())).all() for m in messages), name
