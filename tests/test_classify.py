"""`streamgenre classify` on real files, through the real CLI."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import synth_music, write_audio


def classify(*args):
    return subprocess.run([sys.executable, "-m", "streamgenre", "classify", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("classify")
    music = (synth_music(12.0, seed=4) * 32767).astype(np.int16)  # the same samples in every lossless file
    return {ext: write_audio(d / f"song.{ext}", music) for ext in ("wav", "flac", "ogg", "mp3")}


def test_json_lines_for_every_format(files):
    run = classify("--json", *files.values())
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["path"] for r in results] == [str(p) for p in files.values()]
    for r in results:
        assert set(r) == {"path", "content", "genre", "probabilities", "windows", "music_windows", "duration"}
        assert r["content"]["music"] > 11 and r["music_windows"] == r["windows"]
        assert len(r["probabilities"]) == 10 and abs(sum(r["probabilities"].values()) - 1) < 1e-3
        assert r["genre"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["windows"] == 1 + (12 * 22050 - 65792) // (128 * 256)
        assert abs(r["duration"] - 12.0) < 0.1
    wav, flac = results[0], results[1]
    assert wav["probabilities"] == flac["probabilities"]  # lossless formats decode to the same numbers


def test_the_musicnn_model_classifies_the_same_files_at_its_own_rate(files):
    """`--model musicnn`: files decoded at 16 kHz, windows of 186 frames every 93 (2.99 s every 1.49 s)."""
    run = classify("--json", "--timeline", "--model", "musicnn", files["wav"], files["mp3"])
    assert run.returncode == 0, run.stderr
    wav, mp3 = [json.loads(line) for line in run.stdout.splitlines()]
    assert wav["windows"] == 1 + (12 * 16000 - (512 + 256 * 185)) // (93 * 256) == len(wav["timeline"])
    assert wav["timeline"][1]["start"] == pytest.approx(93 * 256 / 16000, abs=1e-3)
    assert abs(sum(wav["probabilities"].values()) - 1) < 1e-3 and wav["genre"] in wav["probabilities"]
    assert max(abs(wav["probabilities"][g] - mp3["probabilities"][g]) for g in wav["probabilities"]) < 0.1  # lossy copy


def test_timeline_and_table(files):
    run = classify("--json", "--timeline", files["wav"])
    result = json.loads(run.stdout)
    assert len(result["timeline"]) == result["windows"]
    music = [w for w in result["timeline"] if w["content"] == "music"]
    assert len(music) == result["music_windows"] >= result["windows"] - 1
    mean = np.mean([list(w["probabilities"].values()) for w in music], axis=0)
    np.testing.assert_allclose(mean, list(result["probabilities"].values()), atol=1e-4)
    assert result["timeline"][1]["start"] == pytest.approx(1.486, abs=1e-3)
    table = classify(files["wav"]).stdout.splitlines()
    assert table[0].split() == ["file", "content", "genre", "conf", "windows", "seconds"]
    assert result["genre"] in table[1] and "12.0" in table[1]


def test_bad_files_are_reported_and_the_rest_still_classified(tmp_path, files):
    short = write_audio(tmp_path / "short.wav", synth_music(0.3))
    padded = write_audio(tmp_path / "two-seconds.wav", synth_music(2.0))
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"\x00" * 5000)
    run = classify("--json", short, files["wav"], tmp_path / "missing.mp3", junk, padded)
    assert run.returncode == 1
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 3
    assert "short.wav: too short to classify (0.30 s; at least 0.5 s)" in errors[0]
    assert "missing.mp3: no such file" in errors[1]
    assert "junk.ogg: cannot" in errors[2]
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["windows"] for r in results] == [7, 1]  # audio shorter than a window is padded to one


def test_missing_model_is_a_clear_error(files, tmp_path):
    run = classify("--model", tmp_path / "none.onnx", files["wav"])
    assert run.returncode == 2 and run.stderr.strip() == f"streamgenre: error: {tmp_path / 'none.onnx'}: no such model file (the shipped ones: paper, musicnn)"


def test_version_help_and_names_as_wide_as_the_terminal(files, tmp_path):
    from importlib.metadata import version

    run = subprocess.run([sys.executable, "-m", "streamgenre", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == f"streamgenre {version('streamgenre')}\n"
    run = subprocess.run([sys.executable, "-m", "streamgenre", "serve", "--help"], capture_output=True, text=True,
                         env=dict(os.environ, COLUMNS="200"))
    assert "[[source]]" in run.stdout
    deep = tmp_path / ("a-long-folder-name-" * 4) / "song.wav"
    deep.parent.mkdir()
    shutil.copy(files["wav"], deep)
    wide = subprocess.run([sys.executable, "-m", "streamgenre", "classify", str(deep)], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="250"), timeout=120).stdout.splitlines()
    narrow = subprocess.run([sys.executable, "-m", "streamgenre", "classify", str(deep)], capture_output=True,
                            text=True, env=dict(os.environ, COLUMNS="80"), timeout=120).stdout.splitlines()
    assert wide[1].startswith(str(deep) + " ") and max(map(len, narrow)) <= 80 and narrow[1].startswith("...")


def test_musicnn_repeats_a_clip_shorter_than_its_window_and_the_paper_model_pads_it(tmp_path):
    """A 1.2-s clip: musicnn (short_fill "repeat", from its model file) classifies the clip repeated to fill its
    window, as it was trained; the paper CNN the clip followed by silence, as it was trained."""
    from streamgenre.audio import load_audio, pad_to_window
    from streamgenre.backends import create_engine
    from streamgenre.classify import classify_file
    from streamgenre.content_stage import create_content_stage
    from streamgenre.frontend import create_frontend
    from streamgenre.model import load_model

    clip = write_audio(tmp_path / "clip.wav", synth_music(1.2, seed=12))
    for name, fill in (("musicnn", "repeat"), ("paper", "zeros")):
        model = load_model(name)
        assert model.params.short_fill == fill
        frontend, engine = create_frontend("cpu", model.params), create_engine(model, "onnx")
        audio = load_audio(clip, rate=model.params.sample_rate)
        filled = pad_to_window(audio, model.params.window_samples, fill)
        if fill == "repeat":
            n = len(audio)
            np.testing.assert_array_equal(filled[n : 2 * n], audio)  # the clip again, not silence
        else:
            assert not filled[len(audio):].any()
        want = engine.infer(frontend.file_windows(filled))[0]
        got = classify_file(clip, frontend, engine, model.genres, create_content_stage("off", "onnx", 1.5))
        np.testing.assert_allclose([got["probabilities"][g] for g in model.genres], want, atol=1e-5)
        other = engine.infer(frontend.file_windows(pad_to_window(audio, model.params.window_samples,
                                                                 "zeros" if fill == "repeat" else "repeat")))[0]
        assert np.abs(other - want).max() > 1e-3  # the fill makes a difference the test can see


def test_files_in_parallel_processes_give_the_same_results_in_the_same_order(tmp_path, files):
    """`--jobs 2`: the same JSON lines, in the order given, as one process; a bad file among them is its one line
    and the others are classified; `--jobs` that is not a number is a one-line error."""
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"\x00" * 5000)
    paths = [files["wav"], junk, files["flac"], files["ogg"], files["mp3"]]
    one, two = classify("--json", "--jobs", "1", *paths), classify("--json", "--jobs", "2", *paths)
    assert one.returncode == two.returncode == 1 and one.stdout == two.stdout
    assert [json.loads(line)["path"] for line in two.stdout.splitlines()] == [str(p) for p in paths if p != junk]
    assert two.stderr.strip().splitlines() == one.stderr.strip().splitlines() and "junk.ogg" in two.stderr
    bad = classify("--jobs", "many", files["wav"])
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == ["streamgenre: error: --jobs 'many': a number "
                                                                       "of processes (1 to 256) or auto"]
