"""Test audio is built here, so the suite needs nothing from ../shared; tests that use the shared data skip without it."""

from __future__ import annotations

import os
import time
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


def synth_speech(seconds: float, rate: int = 22050, seed: int = 0) -> np.ndarray:
    """Something speech-like that the content network calls speech: syllables of a falling voice (a pulse train
    through three vowel formants), some with a fricative, short gaps between them and longer ones now and then,
    over a microphone's noise floor (-70 dBFS)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    out, pos = np.zeros(int(seconds * rate)), 0
    while pos < len(out):
        length = int(rng.uniform(0.12, 0.3) * rate)
        pitch = rng.uniform(100, 140) * np.linspace(1.1, 0.9, length)
        syllable = (np.diff(np.floor(np.cumsum(pitch / rate)), prepend=0) > 0).astype(float)
        for formant in vowels[rng.integers(len(vowels))]:
            r, theta = np.exp(-np.pi * 80 / rate), 2 * np.pi * formant / rate
            syllable = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], syllable)
        syllable *= np.sin(np.linspace(0, np.pi, length)) ** 0.5
        if rng.random() < 0.4:
            n = int(0.08 * rate)
            syllable[:n] += 0.3 * np.abs(syllable).max() * rng.standard_normal(n) * np.linspace(1, 0, n)
        end = min(len(out), pos + length)
        out[pos:end] = syllable[: end - pos]
        pos = end + int(rng.uniform(0.02, 0.08) * rate) + (int(rng.uniform(0.2, 0.5) * rate) if rng.random() < 0.15 else 0)
    floor = 10 ** (-70 / 20) * rng.standard_normal(len(out))
    return (0.3 * out / np.abs(out).max() + floor).astype(np.float32)


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


def poll(read, done=bool, timeout: float = 10.0, every: float = 0.1):
    """`read()` every `every` seconds until `done` holds for what it returned or `timeout` seconds have passed; its
    last value, for the test to assert on: a test waits as long as the daemon needs and no longer."""
    deadline = time.monotonic() + timeout
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


def write_audio(path: Path, audio: np.ndarray, rate: int = 22050) -> Path:
    soundfile.write(path, audio, rate)
    return path


def step_spans(x: np.ndarray, params: FrontendParams = PAPER) -> list[np.ndarray]:
    """The audio of each step of frames, as a stream cuts it."""
    n = (len(x) - params.step_span_samples) // params.step_samples + 1
    return [x[k * params.step_samples : k * params.step_samples + params.step_span_samples] for k in range(n)]
