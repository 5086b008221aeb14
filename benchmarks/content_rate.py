"""The content stage's patch rate: how many patches a window step needs, and what each costs.

    python benchmarks/content_rate.py [--patches 1 2 3 4 8] [--model paper|musicnn]

Builds a programme from ../shared (music: the openly licensed tracks and 20 s of ten GTZAN tracks; speech:
inaSpeechSegmenter's two readings and English and French from espeak-ng where it is installed; dead air: digital
silence and a -70 dBFS hiss; noise: MUSAN's noise, white noise at -20 dBFS and 50-Hz hum at -20 dBFS), runs it
through the daemon's content stage step by step at the genre model's rate, and compares every window's kind with
what went in and with the original's own segmentation of the whole programme (the port, every 20 ms, with its
Viterbi's look-ahead). Prints agreement per patch rate and the stage's time per window against the genre CNN's.
`--clips` also classifies clips (up to 30 s) of every piece of at least 10 s, of each talk piece over a music bed
12 dB below it (speech over music is speech), and of the 100 full GTZAN tracks, as `classify` does, and counts the
clips whose most seconds are of the kind put in.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from streamgenre.audio import ac_level_db, load_audio
from streamgenre.backends import create_engine
from streamgenre.content import KINDS, MUSIC, NOISE, SILENCE, SPEECH, UNIT_SECONDS, load_content_model
from streamgenre.content_stage import ContentStage
from streamgenre.model import load_model
from streamgenre.pipeline import SILENCE_DB

SHARED = Path(__file__).resolve().parents[2] / "shared"
MEDIA = SHARED / "models/inaspeechsegmenter/media"
TEXTS = {"en": "The weather today will be mostly cloudy, with a chance of rain in the afternoon. And now the news. "
               "The city council met on Tuesday to discuss the budget for public transport, which includes two new "
               "bus lines and a longer timetable at weekends.",
         "fr": "Bonjour à tous, il est huit heures. Voici le journal. Le conseil municipal s'est réuni mardi pour "
               "discuter du budget des transports publics, qui prévoit deux nouvelles lignes de bus."}


def programme(rate: int) -> list[tuple[str, np.ndarray]]:
    """(kind, audio at `rate`) pieces, alternating kinds."""
    def piece(path, start=0.0, seconds=None):
        audio = load_audio(path, rate=rate)[int(start * rate):]
        return audio[: int(seconds * rate)] if seconds else audio

    rng = np.random.default_rng(0)
    music = [piece(p, 10, 30) for p in sorted((SHARED / "data/music").glob("*.ogg"))]
    music += [piece(p, 5, 20) for p in sorted((SHARED / "data/gtzan/full").glob("*.flac"))[::10]]
    speech = [piece(MEDIA / "lamartine.wav"), piece(MEDIA / "musanmix.wav", 63.3, 11)]
    if shutil.which("espeak-ng"):
        for voice, text in TEXTS.items():
            wav = Path(tempfile.mkdtemp()) / f"{voice}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
            speech.append(piece(wav))
    t = np.arange(10 * rate) / rate
    noise = [piece(MEDIA / "musanmix.wav", 29.1, 23), (0.1 * rng.standard_normal(len(t))).astype(np.float32),
             (0.1 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)]
    silence = [np.zeros(8 * rate, np.float32), (3e-4 * rng.standard_normal(8 * rate)).astype(np.float32)]
    pieces, order = [], [(MUSIC, music), (SPEECH, speech), (SILENCE, silence), (NOISE, noise)]
    for i in range(max(len(items) for _, items in order)):  # music, speech, dead air, noise, music, ...
        pieces += [(kind, items[i]) for kind, items in order if i < len(items)]
    return pieces


def truth_per_step(pieces, step: int) -> list[str]:
    kinds = np.concatenate([[k] * len(a) for k, a in pieces])
    return [str(kinds[min(len(kinds) - 1, (i + 1) * step - step // 2)]) for i in range(len(kinds) // step)]


class OneStream:
    """What the content stage reads of a pipeline's stream."""

    def __init__(self, params):
        self.params, self.silence_db, self.content_track = params, SILENCE_DB, None


def run_stage(stage: ContentStage, audio: np.ndarray, params) -> tuple[list[str], float]:
    """Every window's kind as the daemon decides it (one step at a time), and the seconds the stage took."""
    stream, kinds, elapsed, previous_level, step = OneStream(params), [], 0.0, -120.0, params.step_samples
    for i in range(len(audio) // step):
        new = audio[i * step : (i + 1) * step]
        level, previous_level = max(previous_level, ac_level_db(new)), ac_level_db(new)
        started = time.perf_counter()
        probs = stage.score(stage.features([stage.cut(stream, new)]), 1)[0]
        kinds.append(stage.decide(stream, probs, level).kind)
        elapsed += time.perf_counter() - started
    return kinds, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, nargs="+", default=[1, 2, 3, 4, 8])
    parser.add_argument("--model", default="paper")
    parser.add_argument("--clips", action="store_true", help="also the kind of 30-s clips, as classify gives it")
    args = parser.parse_args()
    genre_model, content_model = load_model(args.model), load_content_model()
    rate, step = genre_model.params.sample_rate, genre_model.params.step_samples
    engine = create_engine(content_model, "onnx", threads=1)
    pieces = programme(rate)
    audio = np.concatenate([a for _, a in pieces])
    truth = truth_per_step(pieces, step)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; one ONNX Runtime thread; programme "
          f"{len(audio) / rate:.0f} s in {len(pieces)} pieces, {len(truth)} windows of {step / rate:.2f} s steps")
    offline_stage = ContentStage(content_model, engine, step / rate)
    offline = offline_stage.file_content(audio, rate, SILENCE_DB)  # classify's segmentation
    units = int(round(step / rate / UNIT_SECONDS))
    original = [max(KINDS, key=offline.labels[i * units : (i + 1) * units].count) for i in range(len(truth))]
    print(f"the original (every 20 ms, offline Viterbi): {agree(original, truth):.1f} % of windows as put in")
    genre_engine = create_engine(genre_model, "onnx", threads=1)
    windows = np.random.default_rng(0).random((64, genre_model.params.n_mels, genre_model.params.window_frames),
                                              np.float32)
    genre_engine.infer(windows)
    started = time.perf_counter()
    for _ in range(5):
        genre_engine.infer(windows)
    genre_ms = 1000 * (time.perf_counter() - started) / (5 * len(windows))
    print(f"genre CNN ({genre_model.name}), whole windows: {genre_ms:.2f} ms per window")
    print("| patches a step | as put in | as the original | same, steady windows | ms per window | of the CNN's |")
    print("| --- | --- | --- | --- | --- | --- |")
    steady = [i for i in range(1, len(truth) - 1) if truth[i - 1] == truth[i] == truth[i + 1]]
    for k in args.patches:
        stage = ContentStage(content_model, engine, step / rate, patches=k)
        kinds, elapsed = run_stage(stage, audio, genre_model.params)
        ms = 1000 * elapsed / len(kinds)
        print(f"| {k} | {agree(kinds, truth):.1f} % | {agree(kinds, original):.1f} % | "
              f"{agree([kinds[i] for i in steady], [original[i] for i in steady]):.1f} % | {ms:.2f} | "
              f"{100 * ms / genre_ms:.0f} % |")
    if args.clips:
        clips(pieces, rate, offline_stage)


def clips(pieces, rate: int, stage: ContentStage) -> None:
    """The kind with the most seconds in each 30-s clip (classify's rule), against the kind put in."""
    from collections import Counter

    tracks = [(MUSIC, load_audio(p, rate=rate)[: 30 * rate]) for p in sorted((SHARED / "data/gtzan/full").glob("*"))]
    talk = [a for kind, a in pieces if kind == SPEECH]
    beds = [a for kind, a in pieces if kind == MUSIC and len(a) >= 20 * rate]
    over = [(SPEECH, t + 10 ** (-12 / 20) * np.std(t) / np.std(b[: len(t)]) * b[: len(t)]) for t, b in zip(talk, beds)]
    tried = [(kind, a[: 30 * rate]) for kind, a in pieces if len(a) >= 10 * rate] + over + tracks
    right, wrong = Counter(), []
    for kind, audio in tried:
        seconds = stage.file_content(audio, rate, SILENCE_DB).seconds()
        top = max((k for k in seconds if k != SILENCE), key=seconds.get) if kind != SILENCE else max(seconds,
                                                                                                      key=seconds.get)
        right[kind] += top == kind
        if top != kind:
            wrong.append((kind, seconds))
    total = Counter(kind for kind, _ in tried)
    print("30-s clips, the kind with the most seconds (silence aside for sound):",
          ", ".join(f"{k} {right[k]}/{total[k]}" for k in total))
    for kind, seconds in wrong:
        print(f"  put in {kind}, got {seconds}")


def agree(a: list[str], b: list[str]) -> float:
    return 100.0 * np.mean([x == y for x, y in zip(a, b)])


if __name__ == "__main__":
    main()
