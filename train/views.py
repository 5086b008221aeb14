"""Augmented views of the training audio, each labelled by the teacher on exactly that audio.

A view is new music made out of the old: a 3-s (or 2-3 s) stretch of a recording, with probability MIX_PROBABILITY
mixed with a stretch of another recording, played a little faster or slower (pitch and tempo move together, as a
turntable's do), with a random gain and EQ tilt. The student's log-mel and the teacher's embedding are computed from
the same samples, so the student learns to match the teacher on the view it sees, not on the clean crop the view came
from. The views of a recording are only ever trained on where that recording trains (`Views.training_views`).

    python -m train.views --data ../shared/data/gtzan --data ../shared/data/extra --count 20000   # one bank

`train.train` builds the bank its recipe asks for itself (cached in `train/cache/`), so this command is only needed
to build one ahead of time.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamgenre.audio import SAMPLE_RATE, WINDOW_SAMPLES, load_audio, pad_to_window
from streamgenre.frontend import log_mel
from train.data import CACHE, Track, find_tracks

MIX_PROBABILITY = 0.5
MIX_SHARE = (0.2, 0.5)  # the second recording's share of a mix: the first stays the larger part
GAIN_DB = 6.0  # +-
TILT_DB = 6.0  # +-: the level at the top of the band against the bottom, linear in log frequency
SPEED = 0.06  # +-6 %: about one semitone of pitch, and the tempo with it
SHORT_PROBABILITY = 0.5  # a 2-3 s clip, zero-padded to a window for both networks, as `classify` pads a clip
SHORT_SAMPLES = (2 * SAMPLE_RATE, WINDOW_SAMPLES)
PEAK = 0.99  # views are scaled down where a mix or a gain would clip


def gain(audio: np.ndarray, db: float) -> np.ndarray:
    return audio * np.float32(10 ** (db / 20))


def eq_tilt(audio: np.ndarray, db: float) -> np.ndarray:
    """A spectral tilt: -db/2 at 50 Hz rising linearly in log frequency to +db/2 at the top of the band."""
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    octaves = np.log2(np.maximum(freqs, 50.0) / 50.0)
    curve = db * (octaves / octaves[-1] - 0.5)
    return np.fft.irfft(spectrum * 10 ** (curve / 20), len(audio)).astype(np.float32)


def change_speed(audio: np.ndarray, factor: float, length: int) -> np.ndarray:
    """Play `audio` `factor` times as fast (factor > 1: higher and quicker), keeping the first `length` samples."""
    import soxr

    return soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE)[:length].astype(np.float32)


def mix(first: np.ndarray, second: np.ndarray, share: float) -> np.ndarray:
    """Two recordings played together, the second at `share` of the whole (by amplitude)."""
    return ((1 - share) * first + share * second).astype(np.float32)


def limit(audio: np.ndarray) -> np.ndarray:
    """Scale down what would clip, so a view stays in the range a real file can hold."""
    peak = float(np.abs(audio).max(initial=0.0))
    return audio * np.float32(PEAK / peak) if peak > PEAK else audio


@dataclass
class View:
    audio: np.ndarray  # what both networks hear: 2-3 s or one window of samples at SAMPLE_RATE
    sources: tuple[str, ...]  # the recordings it is made of
    genre: str  # the first recording's


def make_view(tracks: list[Track], audio: list[np.ndarray], rng: np.random.Generator) -> View:
    """One random view; `audio` holds each track's samples (padded to at least one window)."""
    def stretch(i: int, factor: float) -> np.ndarray:
        need = int(np.ceil(WINDOW_SAMPLES * factor)) + 1
        x = audio[i] if len(audio[i]) >= need else np.pad(audio[i], (0, need - len(audio[i])))
        start = int(rng.integers(0, len(x) - need + 1))
        return change_speed(x[start : start + need], factor, WINDOW_SAMPLES)

    first = int(rng.integers(len(tracks)))
    factor = 1 + rng.uniform(-SPEED, SPEED)
    view, sources = stretch(first, factor), (tracks[first].recording,)
    if rng.random() < MIX_PROBABILITY:
        second = int(rng.integers(len(tracks)))
        view = mix(view, stretch(second, factor), rng.uniform(*MIX_SHARE))
        sources += (tracks[second].recording,)
    view = limit(gain(eq_tilt(view, rng.uniform(-TILT_DB, TILT_DB)), rng.uniform(-GAIN_DB, GAIN_DB)))
    if rng.random() < SHORT_PROBABILITY:
        view = view[: int(rng.integers(*SHORT_SAMPLES))]
    return View(view, sources, tracks[first].genre)


@dataclass
class Views:
    """A bank of views: the student's log-mel window, the teacher's embedding and the recordings of each."""

    mel: np.ndarray  # (n, N_MELS, WINDOW_FRAMES) float16
    embedding: np.ndarray  # (n, 456) float32
    sources: np.ndarray  # (n, 2) recording names, '' where a view is not a mix
    genre: np.ndarray  # (n,)

    def training_views(self, recordings: set[str], label) -> list[Track]:
        """The views made only of these recordings, as one-window tracks whose soft target is `label(embeddings)`;
        a view's own label counts only for an unmixed view of a GTZAN recording (the label convention evaluated)."""
        keep = [i for i, pair in enumerate(self.sources) if all(not s or s in recordings for s in pair)]
        soft = label(self.embedding[keep]) if keep else None
        return [Track(Path(f"view:{i}"), str(self.genre[i]), f"view:{i}", "views", self.mel[i].astype(np.float32),
                      soft[j : j + 1], own_label=not self.sources[i][1] and self.sources[i][0].startswith("gtzan:"))
                for j, i in enumerate(keep)]

    def save(self, path: Path) -> None:
        np.savez(path, mel=self.mel, embedding=self.embedding, sources=self.sources, genre=self.genre)

    @staticmethod
    def load(path: Path) -> "Views":
        with np.load(path) as f:
            return Views(f["mel"], f["embedding"], f["sources"], f["genre"])


def build_views(tracks: list[Track], count: int, seed: int, log=print, batch: int = 64) -> Views:
    """`count` views of these tracks, embedded by the teacher in batches."""
    from train.teacher import Teacher, teacher_spectrograms

    teacher, rng = Teacher(), np.random.default_rng(seed)
    audio = [pad_to_window(load_audio(t.path)) for t in tracks]
    mels, embeddings, sources, genres = [], [], [], []
    for start in range(0, count, batch):
        views = [make_view(tracks, audio, rng) for _ in range(min(batch, count - start))]
        mels += [log_mel(pad_to_window(v.audio)).astype(np.float16) for v in views]
        embeddings.append(teacher.embed(np.concatenate([teacher_spectrograms(v.audio) for v in views])))
        sources += [(v.sources + ("",))[:2] for v in views]
        genres += [v.genre for v in views]
        log(f"  {start + len(views)}/{count} views")
    return Views(np.stack(mels), np.concatenate(embeddings), np.array(sources), np.array(genres))


def cached_views(tracks: list[Track], count: int, seed: int, log=print) -> Views:
    """build_views, cached in train/cache/ under the tracks, the count, the seed and the teacher's frontend."""
    from train.musicnn import MUSICNN

    key = hashlib.sha1(repr(([str(t.path) for t in tracks], count, seed, MUSICNN)).encode()).hexdigest()[:16]
    path = CACHE / f"views-{key}.npz"
    if path.exists():
        return Views.load(path)
    views = build_views(tracks, count, seed, log)
    CACHE.mkdir(parents=True, exist_ok=True)
    views.save(path)
    return views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    views = cached_views([t for root in args.data for t in find_tracks(root)], args.count, args.seed)
    print(f"{len(views.mel)} views, {int((views.sources[:, 1] != '').sum())} of them mixes")


if __name__ == "__main__":
    main()
