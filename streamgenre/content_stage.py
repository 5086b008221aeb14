"""The content stage in the daemon: for every window of every stream, music, speech, noise or silence.

Beside each step of frames the genre frontend takes, a stream's `ContentTrack` converts the step's new audio to the
content network's 16 kHz and cuts `patches` patches from it, evenly spaced and ending at the step's end (the
original scores one every 20 ms; a few per step keep its decisions at a fraction of the cost, docs/content.md).
`LevelOnly` stands in where the stage is off.
The patches of all streams in a tick are one batch through the content engine. Each stream's `OnlineSmoother` turns
its patches into a kind with no look-ahead; a window whose level is below `silence_db` is silence whatever the
network says (it is blind to level), and silence restarts the smoother, as the original starts its Viterbi afresh
in each stretch of energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import Resampler
from .content import (MUSIC, SILENCE, UNIT_SECONDS, ContentParams, FileContent, OnlineSmoother, emphasised_frames,
                      finite_probabilities, log_mel_energies, network_input, segment, unit_levels)
from .model import Model, named_probabilities

PATCHES_PER_STEP = 1  # patches scored per window step (~1.5 s): docs/content.md measures 1 to 8 (1 costs less than
# the paper CNN, and is right as often within the measurement's spread)
CHUNK_PATCHES = 4  # patches per NumPy call: larger batches leave the caches (0.37 against 0.9 ms a window at 500)


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

    def __init__(self, params: ContentParams, rate: int, step_seconds: float, patches: int, switch: float):
        self.params = params
        self.resample = Resampler(rate, to_rate=params.sample_rate) if rate != params.sample_rate else None
        self.patches = patches
        self._tail = np.zeros(params.patch_samples, np.float32)  # silence before the stream began
        self.smoother = OnlineSmoother(params, units=step_seconds / patches / UNIT_SECONDS, switch=switch)

    def cut(self, new_audio: np.ndarray) -> np.ndarray:
        """(patches, patch_samples): the patches that end in this step's new audio (at the stream's model rate)."""
        audio = self.resample(new_audio) if self.resample else new_audio
        self._tail = np.concatenate([self._tail, audio])[-(self.params.patch_samples + len(audio)) :]
        size, spacing = self.params.patch_samples, max(1, len(audio) // self.patches)
        ends = [len(self._tail) - (self.patches - 1 - j) * spacing for j in range(self.patches)]
        return np.stack([self._tail[e - size : e] for e in ends])


class ContentStage:
    """The content network and its engine, for all streams of a pipeline: `cut` each step's audio (the polling
    thread), `features` of a tick's patches (the same thread), `score` them as one batch and `decide` each
    window (the engine thread)."""

    def __init__(self, model: Model, engine, step_seconds: float, patches: int = PATCHES_PER_STEP,
                 switch: float | None = None):
        if type(patches) is not int or patches < 1:
            raise ValueError(f"content_patches {patches!r}: a whole number of patches a step, at least 1")
        if switch is not None and (type(switch) not in (int, float) or not 0 < switch <= 1000):
            raise ValueError(f"content_switch {switch!r}: the evidence a change of kind needs, as the original's "
                             f"exponent (a change costs 10^-SWITCH per 20-ms patch; {model.params.switch:g} as shipped)")
        self.model, self.engine, self.params = model, engine, model.params
        self.step_seconds, self.patches = step_seconds, patches
        self.switch = float(switch if switch is not None else model.params.switch)
        self.description = (f"content: {model.path.name} on {engine.name}, {patches} patch(es) a step, switch "
                            f"10^-{self.switch:g}")

    def track(self, rate: int) -> ContentTrack:
        return ContentTrack(self.params, rate, self.step_seconds, self.patches, self.switch)

    def cut(self, stream, new_audio: np.ndarray) -> np.ndarray:
        """The patches of a stream's step, its new audio at the stream's model rate."""
        if stream.content_track is None:
            stream.content_track = self.track(stream.params.sample_rate)
        return stream.content_track.cut(new_audio)

    def features(self, patches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The network's input for the patches of a tick's windows, and which patches it can score (not those
        with a frame of digital silence, as in the original: they leave the stream's kind as it was)."""
        audio, bands = np.concatenate(patches), self.params.net_bands
        mspec = np.concatenate([log_mel_energies(emphasised_frames(audio[i : i + CHUNK_PATCHES], self.params),
                                                 self.params)[..., :bands]
                                for i in range(0, len(audio), CHUNK_PATCHES)])
        return network_input(mspec)

    def score(self, features: tuple[np.ndarray, np.ndarray], windows: int) -> np.ndarray:
        """(windows, patches, 3) probabilities; thirds for patches it cannot score (a constant, digital silence)."""
        x, finite = features
        probs = self.engine.infer(x) if finite.any() else np.zeros((len(x), len(self.params.labels)))
        return finite_probabilities(probs, finite).reshape(windows, self.patches, -1)

    def release_memory(self) -> None:
        self.engine.release_memory()

    def file_content(self, audio: np.ndarray, rate: int, silence_db: float) -> FileContent:
        """A whole file's content, segmented as the original does (content.segment), from audio at `rate`."""
        if rate != self.params.sample_rate:
            resample = Resampler(rate, to_rate=self.params.sample_rate)
            audio = np.concatenate([resample(audio), resample(np.zeros(0, np.float32))])
        return segment(audio, self.engine, self.params, silence_db)

    def decide(self, stream, probs: np.ndarray, level_db: float) -> Content:
        """The kind of a stream's window from its step's patch probabilities (in order) and its level."""
        mean = named_probabilities(self.params.labels, probs.mean(axis=0))
        track = stream.content_track
        if level_db < stream.silence_db:
            track.smoother.reset()
            return Content(SILENCE, mean)
        for p in probs:
            state = track.smoother.update(p)
        return Content(self.params.labels[state], mean)


class LevelOnly:
    """`content = "off"`: no network; a window is silence by its level, and music otherwise (as before the content
    stage: every sound gets a genre)."""

    description = "content: off (the level alone: silence or music)"

    def cut(self, stream, new_audio: np.ndarray) -> None:
        return None

    def features(self, patches: list) -> None:
        return None

    def score(self, features: None, windows: int) -> list[None]:
        return [None] * windows

    def decide(self, stream, probs: None, level_db: float) -> Content:
        return Content(SILENCE if level_db < stream.silence_db else MUSIC, None)

    def release_memory(self) -> None:
        pass

    def file_content(self, audio: np.ndarray, rate: int, silence_db: float) -> FileContent:
        return FileContent([SILENCE if q else MUSIC for q in unit_levels(audio, rate) < silence_db], None)


def create_content_stage(setting: str, engine_kind: str, step_seconds: float, patches: int = PATCHES_PER_STEP,
                         threads: int = 0, fp16: bool = False, log=lambda message: None, switch: float | None = None):
    """`on`: the shipped content network on the engine the genre model runs on (`auto`, `tensorrt`, `onnx`);
    `off`: LevelOnly. ValueError for another setting or a bad patch count or switch, ModelError or EngineError
    where it cannot run."""
    from .backends import create_engine
    from .content import load_content_model

    if setting == "off":
        return LevelOnly()
    if setting != "on":
        raise ValueError(f"content {setting!r}: use on or off")
    model = load_content_model()
    return ContentStage(model, create_engine(model, engine_kind, threads=threads, fp16=fp16, log=log), step_seconds,
                        patches, switch)
