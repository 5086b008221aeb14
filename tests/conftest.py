"""Test audio is built here, so the suite needs nothing from ../shared; tests that use the shared data skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from streamgenre.frontend import PAPER, FrontendParams

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_MUSIC = sorted((SHARED / "data" / "music").glob("*.ogg"))


def synth_music(seconds: float, rate: int = 22050, seed: int = 0, tempo: float = 120.0) -> np.ndarray:
    """A few seconds of something music-like: a chord progression of harmonic notes, a bass line and noise drums."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    beat = 60.0 / tempo
    for i, start in enumerate(np.arange(0, seconds, beat)):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        sel = (t >= start) & (t < start + beat)
        local = t[sel] - start
        envelope = np.exp(-3 * local)
        for ratio in (1, 1.25, 1.5, 2):
            for harmonic in (1, 2, 3):
                out[sel] += 0.05 / harmonic * envelope * np.sin(2 * np.pi * root * ratio * harmonic * local)
        out[sel] += 0.1 * np.sin(2 * np.pi * root / 2 * local)
        drum = sel & (t < start + 0.05)
        out[drum] += 0.3 * rng.standard_normal(drum.sum()) * (i % 2 + 0.5)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="session", autouse=True)
def history_in_a_temporary_folder(tmp_path_factory):
    """Daemons started by the tests keep their genre log here, not in the user's ~/.local/share."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    for name in ("STREAMGENRE_HISTORY", "STATE_DIRECTORY"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def music() -> np.ndarray:
    """20 s of synthetic music at 22050 Hz."""
    return synth_music(20.0)


@pytest.fixture(scope="session")
def music_file(tmp_path_factory, music) -> Path:
    path = tmp_path_factory.mktemp("audio") / "music.wav"
    soundfile.write(path, music, 22050)
    return path


def write_audio(path: Path, audio: np.ndarray, rate: int = 22050) -> Path:
    soundfile.write(path, audio, rate)
    return path


def step_spans(x: np.ndarray, params: FrontendParams = PAPER) -> list[np.ndarray]:
    """The audio of each step of frames, as a stream cuts it."""
    n = (len(x) - params.step_span_samples) // params.step_samples + 1
    return [x[k * params.step_samples : k * params.step_samples + params.step_span_samples] for k in range(n)]
