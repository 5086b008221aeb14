"""Evaluation as the paper: a track's genre is the argmax of its windows' mean probability.

Three figures for held-out audio: clips (excerpts shorter than two windows, zero-padded to one window, as the
shipped model is judged), windows (every 3-s window of the full tracks, 50 % overlap) and tracks (full tracks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from streamgenre.frontend import windows
from train.data import Track


def predict(net: torch.nn.Module, batch: np.ndarray, size: int = 128) -> np.ndarray:
    """Probabilities for (n, N_MELS, WINDOW_FRAMES) windows, on the device the network is on."""
    net.eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        parts = [torch.softmax(net(torch.from_numpy(batch[i : i + size])[:, None].to(device)), 1)
                 for i in range(0, len(batch), size)]
    return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, 0), np.float32)


@dataclass
class Scores:
    genres: list[str]
    truth: dict[str, list[int]] = field(default_factory=lambda: {"clips": [], "windows": [], "tracks": []})
    guess: dict[str, list[int]] = field(default_factory=lambda: {"clips": [], "windows": [], "tracks": []})

    def add(self, kind: str, truth: int, guesses) -> None:
        for g in np.atleast_1d(guesses):
            self.truth[kind].append(truth)
            self.guess[kind].append(int(g))

    def accuracy(self, kind: str) -> float | None:
        t, g = np.array(self.truth[kind]), np.array(self.guess[kind])
        return float((t == g).mean()) if len(t) else None

    @property
    def example_accuracy(self) -> float:
        """Clips and windows together: the early-stopping criterion."""
        t = np.array(self.truth["clips"] + self.truth["windows"])
        return float((t == np.array(self.guess["clips"] + self.guess["windows"])).mean())

    def confusion(self, kind: str) -> np.ndarray:
        m = np.zeros((len(self.genres), len(self.genres)), int)
        np.add.at(m, (self.truth[kind], self.guess[kind]), 1)
        return m

    def summary_json(self) -> dict:
        return {kind: {"accuracy": self.accuracy(kind), "n": len(self.truth[kind])} for kind in self.truth}

    def summary(self) -> str:
        return ", ".join(
            f"{kind} {v['accuracy']:.3f} (n={v['n']})" for kind, v in self.summary_json().items() if v["n"]
        )

    def to_json(self) -> dict:
        per_genre = {}
        for kind in self.truth:
            m = self.confusion(kind)
            per_genre[kind] = {g: (float(m[i, i] / m[i].sum()) if m[i].sum() else None) for i, g in enumerate(self.genres)}
        return {
            "summary": self.summary(),
            "accuracy": self.summary_json(),
            "per_genre": per_genre,
            "confusion": {kind: self.confusion(kind).tolist() for kind in self.truth},
            "genres": self.genres,
        }

    @staticmethod
    def combine(parts: list["Scores"]) -> "Scores":
        out = Scores(parts[0].genres)
        for p in parts:
            for kind in out.truth:
                out.truth[kind] += p.truth[kind]
                out.guess[kind] += p.guess[kind]
        return out


def score(net: torch.nn.Module, tracks: list[Track], genres: list[str]) -> Scores:
    """Score held-out tracks: excerpts as clips, full tracks by window and by mean over windows."""
    return score_probabilities(tracks, genres, lambda track: predict(net, windows(track.mel)))


def score_probabilities(tracks: list[Track], genres: list[str], probabilities) -> Scores:
    """The same from any classifier: `probabilities(track)` gives (n_windows, genres) for its consecutive windows."""
    s = Scores(list(genres))
    for track in tracks:
        if track.genre not in genres:
            continue
        truth = genres.index(track.genre)
        probs = probabilities(track)
        if track.is_excerpt:
            s.add("clips", truth, probs[:1].argmax(1))  # the first window: what classify sees of a padded clip
        else:
            s.add("windows", truth, probs.argmax(1))
            s.add("tracks", truth, probs.mean(0).argmax())
    return s
