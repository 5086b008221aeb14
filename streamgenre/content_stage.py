"""The content stage in the daemon: for every window of every stream, music, speech, noise or silence.

Beside each step of frames the genre frontend takes, a stream's `ContentTrack` converts the step's new audio to the
content network's 16 kHz and cuts `patches` patches from it, evenly spaced and ending at the step's end (the
original scores one every 20 ms; a few per step keep its decisions at a fraction of the cost, docs/content.md).
The patches of all streams in a tick are one batch through the content engine. Each stream's `OnlineSmoother` turns
its patches into a kind with no look-ahead; a window whose level is below `silence_db` is silence whatever the
network says (it is blind to level), and silence restarts the smoother, as the original starts its Viterbi afresh
in each stretch of energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import Resampler
from .content import (MUSIC, SILENCE, UNIT_SECONDS, ContentParams, OnlineSmoother, content_features,
                      finite_probabilities, network_input)
from .model import Model, named_probabilities

PATCHES_PER_STEP = 2  # patches scored per window step (~1.5 s): docs/content.md measures 1 to 8


@dataclass(frozen=True)
class Content:
    """What one window is: `kind` (content.KINDS) and the network's mean probabilities over its patches."""

    kind: str
    probabilities: dict[str, float] | None  # None where the stage is off

    @property
    def is_music(self) -> bool:
        return self.kind == MUSIC


class ContentTrack:
    """One stream's state in the content stage: its 16-kHz audio tail and its smoother."""

    def __init__(self, params: ContentParams, rate: int, step_seconds: float, patches: int):
        self.params = params
        self.resample = Resampler(rate, to_rate=params.sample_rate) if rate != params.sample_rate else None
        self.patches = patches
        self._tail = np.zeros(params.patch_samples, np.float32)  # silence before the stream began
        self.smoother = OnlineSmoother(params, units=step_seconds / patches / UNIT_SECONDS)

    def cut(self, new_audio: np.ndarray) -> np.ndarray:
        """(patches, patch_samples): the patches that end in this step's new audio (at the stream's model rate)."""
        audio = self.resample(new_audio) if self.resample else new_audio
        self._tail = np.concatenate([self._tail, audio])[-(self.params.patch_samples + len(audio)) :]
        size, spacing = self.params.patch_samples, max(1, len(audio) // self.patches)
        ends = [len(self._tail) - (self.patches - 1 - j) * spacing for j in range(self.patches)]
        return np.stack([self._tail[e - size : e] for e in ends])


class ContentStage:
    """The content network and its engine, for all streams of a pipeline."""

    def __init__(self, model: Model, engine, step_seconds: float, silence_db: float,
                 patches: int = PATCHES_PER_STEP):
        if patches < 1:
            raise ValueError(f"content patches {patches!r}: at least 1 a step")
        self.model, self.engine, self.params = model, engine, model.params
        self.step_seconds, self.silence_db, self.patches = step_seconds, silence_db, patches

    def track(self, rate: int) -> ContentTrack:
        return ContentTrack(self.params, rate, self.step_seconds, self.patches)

    def features(self, patch_audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's input for (n, patch_samples) audio, and which patches it can score."""
        mspec, _ = content_features(patch_audio, self.params)
        return network_input(mspec[..., : self.params.net_bands])

    def score(self, x: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities; thirds for patches it cannot score (a constant, digital silence)."""
        probs = self.engine.infer(x) if finite.any() else np.zeros((len(x), len(self.params.labels)))
        return finite_probabilities(probs, finite)

    def decide(self, track: ContentTrack, probs: np.ndarray, level_db: float) -> Content:
        """The kind of a window from its step's patch probabilities (in order) and its level."""
        mean = named_probabilities(self.params.labels, probs.mean(axis=0))
        if level_db < self.silence_db:
            track.smoother.reset()
            return Content(SILENCE, mean)
        for p in probs:
            state = track.smoother.update(p)
        return Content(self.params.labels[state], mean)
