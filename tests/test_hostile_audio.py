"""Hostile audio: NaN and infinite samples never reach a client as a non-finite number (bare NaN is not JSON); broken
files and streams lose only what is broken."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import synth_music, write_audio
from daemon import collect, predictions, running_daemon


def strict_json(text: str):
    """What a browser's JSON.parse accepts: no NaN, Infinity or -Infinity."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def nan_file(tmp_path):
    """A float WAV with 100 NaN samples and a few infinities in the middle of real music."""
    audio = synth_music(8.0, seed=5)
    audio[50_000:50_100] = np.nan
    audio[90_000:90_003] = [np.inf, -np.inf, np.inf]
    path = tmp_path / "nan.wav"
    soundfile.write(path, audio, 22050, subtype="FLOAT")
    return path


def test_classify_json_stays_json_with_nan_samples(tmp_path):
    path = nan_file(tmp_path)
    run = subprocess.run([sys.executable, "-m", "streamgenre", "classify", "--json", "--timeline", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = strict_json(run.stdout)
    assert result["replaced_samples"] == 103
    assert all(np.isfinite(list(w["probabilities"].values())).all() for w in result["timeline"])
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-3
    assert run.stderr.strip() == f"streamgenre: warning: {path}: 103 NaN or infinite samples, classified as silence"


def test_daemon_messages_stay_finite_with_nan_samples(tmp_path):
    path = nan_file(tmp_path)
    with running_daemon(f"nan={path}", "--average", "all", "--once") as (port, _):
        got = collect(port, lambda ms: any(m["type"] == "status" and m["event"] == "ended" for m in ms), timeout=20,
                      raw=True)
    messages = [strict_json(text) for _, text in got]  # every message, exactly as it was sent
    preds = [m for m in messages if m["type"] == "prediction"]
    assert len(preds) == 1 + (8 * 22050 - 65792) // (128 * 256)
    for p in preds:
        assert np.isfinite(list(p["average"].values())).all() and np.isfinite(p["confidence"])
    replaced = [m for m in messages if m["type"] == "status" and m["event"] == "replaced"]
    assert len(replaced) == 1 and "replaced by silence" in replaced[0]["message"]
    assert predictions([(0, m) for m in messages])[-1]["confidence"] > 0


def classify_json(*paths):
    run = subprocess.run([sys.executable, "-m", "streamgenre", "classify", "--json", *map(str, paths)],
                         capture_output=True, text=True, timeout=120)
    return run, [strict_json(line) for line in run.stdout.splitlines()]


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Files as they come off the air and off disks: a format change mid-stream, garbled bytes, a truncated end."""
    d = tmp_path_factory.mktemp("broken")
    stereo = write_audio(d / "a.mp3", np.stack([synth_music(6.0, 44100, seed=1)] * 2, axis=1), 44100)
    mono = write_audio(d / "b.mp3", synth_music(6.0, 22050, seed=2), 22050)
    (d / "change.mp3").write_bytes(stereo.read_bytes() + mono.read_bytes())  # 44.1 kHz stereo, then 22.05 kHz mono
    data = bytearray(stereo.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = np.random.default_rng(0).integers(0, 256, 64, np.uint8).tobytes()
    (d / "garbled.mp3").write_bytes(bytes(data))
    flac = write_audio(d / "whole.flac", (synth_music(8.0, seed=3) * 32767).astype(np.int16))
    (d / "truncated.flac").write_bytes(flac.read_bytes()[: int(flac.stat().st_size * 0.7)])
    return d


def test_classify_survives_a_format_change_garbled_bytes_and_a_truncated_end(broken):
    run, results = classify_json(broken / "change.mp3", broken / "garbled.mp3", broken / "truncated.flac")
    assert run.returncode == 0, run.stderr
    assert [Path(r["path"]).name for r in results] == ["change.mp3", "garbled.mp3", "truncated.flac"]
    change, garbled, truncated = results
    assert change["duration"] == pytest.approx(12.0, abs=0.2)  # both halves, at their own rates
    assert garbled["duration"] == pytest.approx(6.0, abs=0.3) and garbled["skipped_packets"] == 1
    assert 4.0 < truncated["duration"] < 7.0  # what was there before the cut
    assert "Traceback" not in run.stderr


def test_classify_reports_a_fifo_and_a_folder_in_one_line_each_and_goes_on(tmp_path, broken):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    run, results = classify_json(fifo, tmp_path, broken / "garbled.mp3")
    assert run.returncode == 1 and [Path(r["path"]).name for r in results] == ["garbled.mp3"]
    refused = "not a regular file (a directory, FIFO or device)"
    assert run.stderr.splitlines() == [f"streamgenre: error: {fifo}: {refused}",
                                       f"streamgenre: error: {tmp_path}: {refused}",
                                       f"streamgenre: warning: {broken / 'garbled.mp3'}: 1 undecodable packets skipped"]


def test_daemon_file_source_plays_through_a_format_change(broken):
    with running_daemon(f"change={broken / 'change.mp3'}", "--average", "last:2", "--once") as (port, _):
        got = collect(port, lambda ms: any(m["type"] == "status" and m["event"] in ("ended", "error") for m in ms),
                      timeout=30)
    events = [m["event"] for _, m in got if m["type"] == "status"]
    assert events[-1] == "ended" and "error" not in events
    assert len(predictions(got)) == 1 + (12 * 22050 - 65792) // (128 * 256)
