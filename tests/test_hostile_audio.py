"""Hostile audio: NaN and infinite samples never reach a client as a non-finite number (bare NaN is not JSON)."""

import json
import subprocess
import sys

import numpy as np
import soundfile

from conftest import synth_music
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
    with running_daemon(f"nan={path}", "--average", "all") as (port, _):
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
