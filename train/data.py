"""Finding labelled audio, computing its log-mel once, and splitting it by recording.

Layouts understood (a root may be any of them):
- GTZAN as distributed: `genres/<g>/<g>.000NN.au`, `genres_original/<g>/<g>.000NN.wav`, or flat `<g>.000NN.*`;
  the partial copy in `../shared/data/gtzan` (`full/` and `excerpts/`, same names) is flat by this rule.
- A folder with `tracks.csv` (`file,genre,...`), like `../shared/data/extra`.
- Any folder-per-genre collection: `<root>/<genre>/**/<file>`.

A GTZAN file's recording is its name (`blues.00001`), so an excerpt and the full track it was cut from fall on the
same side of every split; other files are their own recording.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamgenre.audio import AUDIO_EXTENSIONS, STEP_FRAMES, WINDOW_FRAMES, load_audio, pad_to_window
from streamgenre.frontend import log_mel

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
GTZAN_NAME = re.compile(rf"^({'|'.join(GTZAN_GENRES)})\.(\d{{5}})$")
CACHE = Path(__file__).resolve().parent / "cache"


@dataclass
class Track:
    path: Path
    genre: str
    recording: str  # tracks of one recording are never split apart
    source: str  # which root it came from, e.g. "gtzan" or "extra"
    mel: np.ndarray | None = None  # (N_MELS, n_frames) log-mel, filled by load_features
    soft: np.ndarray | None = None  # teacher probabilities at each of window_starts(), when distilling
    own_label: bool = True  # False: the teacher's soft targets alone train on it (audio of another label convention)
    embedding: np.ndarray | None = None  # the teacher's standardised embedding at each of window_starts(), if learnt

    @property
    def is_excerpt(self) -> bool:
        """Shorter than two windows: used as one (padded) example rather than cropped."""
        return len(window_starts(self.mel.shape[1])) == 1


def window_starts(n_frames: int) -> list[int]:
    """Start frames of a track's consecutive windows (50 % overlap); an excerpt is one padded window."""
    if n_frames < 2 * WINDOW_FRAMES:
        return [0]
    return list(range(0, n_frames - WINDOW_FRAMES + 1, STEP_FRAMES))


def find_tracks(root: str | Path, source: str | None = None) -> list[Track]:
    """All labelled audio under root, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    source = source or root.name
    listing = root / "tracks.csv"
    if listing.exists():
        with listing.open() as f:
            rows = list(csv.DictReader(f))
        return [Track(root / r["file"], r["genre"], f"{source}:{r['file']}", source) for r in rows]
    tracks = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        match = GTZAN_NAME.match(path.stem)
        if match:
            tracks.append(Track(path, match.group(1), f"gtzan:{path.stem}", source))
        elif path.parent != root:
            genre = path.relative_to(root).parts[0]
            tracks.append(Track(path, genre, f"{source}:{path.relative_to(root)}", source))
    if not tracks:
        raise ValueError(f"{root}: no labelled audio (expected GTZAN names, tracks.csv or one folder per genre)")
    return tracks


def cache_key(path: Path) -> str:
    """A file's name in the caches: its resolved path and modification time, hashed."""
    return hashlib.sha1(f"{path.resolve()}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]


def cached(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`, kept in `path` (None: not kept) and read from there next time. Written whole or not at all
    (a temporary name, then renamed): a second training reading the cache never sees half a file."""
    if path is not None and path.exists():
        return np.load(path)
    array = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
        np.save(partial, array)
        os.replace(partial, path)
    return array


def load_features(tracks: list[Track], cache: Path | None = CACHE) -> list[Track]:
    """Fill each track's log-mel, padding excerpts shorter than a window to one window; cached on disk by path."""
    for track in tracks:
        track.mel = cached(cache / f"{cache_key(track.path)}.npy" if cache else None,
                           lambda: log_mel(pad_to_window(load_audio(track.path))))
    return tracks


def read_split(split_file: Path) -> set[str]:
    """Recordings named in a GTZAN split list (lines like `blues/blues.00029.wav`)."""
    return {f"gtzan:{Path(line.strip()).stem}" for line in split_file.read_text().splitlines() if line.strip()}


SPLIT_LISTS = ("train", "valid", "test")  # Kereliuk et al. 2015: <name>_filtered.txt, artist-disjoint from each other


def artist_folds(split_dir: Path) -> list[set[str]]:
    """The fault-filtered lists as folds: no artist is in two of them, so a network tested on one list and trained
    on the others (and on recordings in no list, which only ever train) is tested on artists it never heard."""
    return [read_split(Path(split_dir) / f"{name}_filtered.txt") for name in SPLIT_LISTS]


def group_folds(tracks: list[Track], k: int, seed: int, gtzan_only: bool = True) -> list[set[str]]:
    """k folds of recordings, stratified by genre; by default only GTZAN recordings (the ones evaluated on).
    GTZAN has many recordings per artist, so these folds share artists: the artist-disjoint ones are artist_folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    chosen = [t for t in tracks if t.recording.startswith("gtzan:") or not gtzan_only]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    labels = [t.genre for t in chosen]
    groups = [t.recording for t in chosen]
    return [{groups[i] for i in test} for _, test in splitter.split(np.zeros(len(chosen)), labels, groups)]
