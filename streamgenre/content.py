"""The content stage: what kind of sound a stream carries (music, speech, noise or silence) before any genre.

The network is INA's inaSpeechSegmenter `smn` model (MIT; Doukhan et al., ICASSP 2018), ported to ONNX
(`engines/streamgenre-content.onnx`, built by `python -m train.content_model`). Its features are computed here, from
the parameters its file carries (`ContentParams`), as SIDEKIT's `mfcc(get_mspec=True)` computes them for the
original: 16 kHz audio, 25-ms frames every 10 ms, pre-emphasis inside each frame, a symmetric Hann window, 24 log
energies of HTK-mel triangles from 100 Hz to 8 kHz, of which the network reads the first 21. A patch is 68 frames of
those bands, standardised by its own mean and deviation, so the network is blind to the level: silence is told by
the level itself (`silence_db`), as the daemon's dead-air rule always did.

Files are segmented as the original does (`segment`): frames with energy (a 2-state Viterbi over a threshold
relative to the file's mean log-energy), one patch every 2 frames, a 3-state Viterbi over the network's log
probabilities inside each energy segment. A live stream has no future and no mean: `OnlineSmoother` keeps the
Viterbi's forward scores and takes the best state at each patch, with the switch cost scaled to the daemon's patch
rate (a few patches a window instead of one every 20 ms).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import onnx

from .audio import ac_level_db
from .model import Model, ModelError, file_sha256

CONTENT_MODEL = "streamgenre-content.onnx"  # in engines/
MUSIC, SPEECH, NOISE, SILENCE = "music", "speech", "noise", "silence"
KINDS = (MUSIC, SPEECH, NOISE, SILENCE)  # every window's `content` is one of these
SAID = {SPEECH: "talk", NOISE: "noise", SILENCE: "dead air"}  # how people name the kinds that are not music
UNIT_SECONDS = 0.02  # the original's patch step and segment unit: every 2 frames of 10 ms


@dataclass(frozen=True)
class ContentParams:
    """The content network's features and smoothing, stored in its ONNX file and read back on load."""

    labels: tuple[str, ...] = (SPEECH, MUSIC, NOISE)  # the network's outputs, in order
    sample_rate: int = 16000
    frame_seconds: float = 0.025
    hop_seconds: float = 0.01
    preemphasis: float = 0.97
    low_hz: float = 100.0
    high_hz: float = 8000.0
    bands: int = 24  # log mel energies per frame
    net_bands: int = 21  # of which the network reads the first ones
    patch_frames: int = 68
    patch_step: int = 2  # frames between patches in the original (one every 20 ms)
    energy_ratio: float = 0.03  # a frame has energy above mean(log-energy) + log(ratio)
    energy_switch: float = 150.0  # its Viterbi: a change costs 10^-150, ...
    energy_stay_silent: float = -5.0  # ... and each frame without energy log(e^-5)
    switch: float = 80.0  # the network's Viterbi: a change of kind costs 10^-80 per 20-ms patch

    @property
    def frame_samples(self) -> int:
        return int(round(self.frame_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(self.hop_seconds * self.sample_rate)

    @property
    def n_fft(self) -> int:
        return 2 ** int(np.ceil(np.log2(self.frame_samples)))

    @property
    def patch_samples(self) -> int:
        """Samples that make exactly one patch."""
        return self.frame_samples + self.hop_samples * (self.patch_frames - 1)

    # the shape names the engines read off a model (backends): rows x columns of one network input
    @property
    def n_mels(self) -> int:
        return self.net_bands

    @property
    def window_frames(self) -> int:
        return self.patch_frames

    step_frames = 0  # no columns carried between patches (columns.py)

    def as_metadata(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_metadata(cls, meta: dict) -> "ContentParams":
        fields = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(meta) - fields):
            raise ValueError(f"unknown content parameters {unknown}")
        params = cls(**{**meta, "labels": tuple(meta.get("labels", cls.labels))})
        if sorted(params.labels) != sorted((SPEECH, MUSIC, NOISE)) or params.net_bands > params.bands:
            raise ValueError("the content network must give speech, music and noise from at most its bands")
        return params


def content_model_path() -> Path:
    return Path(str(files("streamgenre.engines").joinpath(CONTENT_MODEL)))


def load_content_model(path: str | Path | None = None) -> Model:
    """The content network (the shipped one unless a path is given), as a Model the engines run: its `params` are
    ContentParams, its `genres` the three kinds it tells apart."""
    path = Path(path) if path else content_model_path()
    if not path.is_file():
        raise ModelError(f"{path}: no such content model file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        params = ContentParams.from_metadata(json.loads(meta["streamgenre.content"]))
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: not a streamgenre content model ({e})") from None
    except Exception as e:  # onnx's DecodeError and the like, for files that are not models
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    return Model(path, params.labels, params, file_sha256(path), meta.get("streamgenre.description", ""))


# --- features (SIDEKIT's mfcc with get_mspec=True, as the original calls it) ---

def hz_to_htk_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def htk_mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=None)
def content_filters(params: ContentParams) -> np.ndarray:
    """(bands, 1 + n_fft // 2) triangles evenly spaced on the HTK mel scale, each of unit area, sampled on the FFT
    bins the way SIDEKIT's trfbank does (a bin at a triangle's lower edge is left out, and its last one on the
    falling side)."""
    n_fft, rate = params.n_fft, params.sample_rate
    edges = htk_mel_to_hz(np.linspace(hz_to_htk_mel(params.low_hz), hz_to_htk_mel(params.high_hz), params.bands + 2))
    heights = 2.0 / (edges[2:] - edges[:-2])
    bin_hz = np.arange(n_fft) / n_fft * rate
    filters = np.zeros((params.bands, n_fft // 2 + 1), np.float32)
    for i, (low, centre, high) in enumerate(zip(edges[:-2], edges[1:-1], edges[2:])):
        rising = np.arange(np.floor(low * n_fft / rate) + 1, np.floor(centre * n_fft / rate) + 1).astype(int)
        falling = np.arange(np.floor(centre * n_fft / rate) + 1,
                            min(np.floor(high * n_fft / rate) + 1, n_fft)).astype(int)[:-1]
        filters[i, rising] = heights[i] / (centre - low) * (bin_hz[rising] - low)
        filters[i, falling] = heights[i] / (high - centre) * (high - bin_hz[falling])
    return filters


def frame_count(n_samples: int, params: ContentParams) -> int:
    return max(0, 1 + (n_samples - params.frame_samples) // params.hop_samples)


def emphasised_frames(audio: np.ndarray, params: ContentParams) -> np.ndarray:
    """(..., n_frames, frame_samples) frames of (..., n_samples) 16-kHz mono audio, each pre-emphasised on its own
    (its first sample against itself), as SIDEKIT frames them."""
    audio = np.ascontiguousarray(audio, np.float32)
    n, size = frame_count(audio.shape[-1], params), params.frame_samples
    *lead, stride = audio.strides
    frames = np.lib.stride_tricks.as_strided(audio, (*audio.shape[:-1], n, size),
                                             (*lead, stride * params.hop_samples, stride))
    return frames - np.concatenate([frames[..., :1], frames[..., :-1]], axis=-1) * np.float32(params.preemphasis)


def log_mel_energies(frames: np.ndarray, params: ContentParams) -> np.ndarray:
    """(..., n_frames, bands) log energies of pre-emphasised frames: symmetric Hann window, power spectrum, HTK-mel
    triangles; -inf for a frame of digital silence, as in the original."""
    spectrum = np.fft.rfft(frames * np.hanning(params.frame_samples), params.n_fft, axis=-1)
    with np.errstate(divide="ignore"):
        return np.log((spectrum.real**2 + spectrum.imag**2) @ content_filters(params).T.astype(np.float64))


def content_features(audio: np.ndarray, params: ContentParams) -> tuple[np.ndarray, np.ndarray]:
    """Log mel energies (..., n_frames, bands) and log-energy (..., n_frames) of (..., n_samples) 16-kHz mono
    float32 audio, as SIDEKIT's mfcc(get_mspec=True) gives them to the original."""
    frames = emphasised_frames(audio, params)
    with np.errstate(divide="ignore"):
        log_energy = np.log((frames.astype(np.float64) ** 2).sum(axis=-1))
    return log_mel_energies(frames, params), log_energy


def standardised(patches: np.ndarray) -> np.ndarray:
    """Each (frames, bands) patch less its own mean, over its own standard deviation (NaN where it is constant or
    not finite: those the caller scores as undecided)."""
    flat = patches.reshape(len(patches), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = (flat - flat.mean(axis=1, keepdims=True)) / flat.std(axis=1, keepdims=True)
    return flat.reshape(patches.shape)


def network_input(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised (n, frames, net_bands) patches as the network's (n, net_bands, frames) float32 input, and which
    of them are finite; the others are zeros here and get UNDECIDED from `finite_probabilities`."""
    x = standardised(patches)
    finite = np.isfinite(x).all(axis=(1, 2))
    x[~finite] = 0.0
    return np.ascontiguousarray(x.transpose(0, 2, 1), np.float32), finite


def finite_probabilities(probs: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """The network's probabilities, equal thirds for a patch it could not score (the original scores 0.5 each,
    which gives its Viterbi the same choice)."""
    probs = np.array(probs, np.float64)
    probs[~finite] = 1.0 / probs.shape[1]
    return probs


def file_patches(mspec: np.ndarray, params: ContentParams) -> np.ndarray:
    """One (patch_frames, net_bands) patch every patch_step frames, centred on its frame, the first and last
    repeated to the edges (the original's `_get_patches`): ceil(n_frames / 2) patches."""
    mspec = mspec[:, : params.net_bands]
    w, step = params.patch_frames, params.patch_step
    short = max(0, w - len(mspec))
    if short:  # the original pads a short file with its lowest energy and later drops those patches
        mspec = np.concatenate([mspec, np.full((short, mspec.shape[1]), np.min(mspec))])
    starts = np.arange(0, len(mspec) - w + 1, step)
    inner = np.stack([mspec[s : s + w] for s in starts])
    left, right = w // (2 * step), w // (2 * step) - 1 + len(mspec) % 2
    patches = np.concatenate([np.repeat(inner[:1], left, 0), inner, np.repeat(inner[-1:], right, 0)])
    return patches[: len(patches) - short // 2] if short else patches


# --- smoothing ---

def viterbi(log_emission: np.ndarray, log_transition: np.ndarray) -> np.ndarray:
    """The most probable state sequence (uniform start), ties to the lower state, as pyannote's decoder that the
    original uses."""
    n, k = log_emission.shape
    score = log_emission[0] - np.log(k)
    back = np.empty((n, k), int)
    for t in range(1, n):
        candidates = score[:, None] + log_transition
        back[t] = np.argmax(candidates, axis=0)
        score = log_emission[t] + candidates[back[t], np.arange(k)]
    path = np.empty(n, int)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def switch_matrix(states: int, cost: float, stay: float = 0.0) -> np.ndarray:
    """Log transition matrix: a change costs `cost` (natural log), staying `stay`."""
    matrix = np.full((states, states), -cost)
    np.fill_diagonal(matrix, stay)
    return matrix


def relative_energy(log_energy: np.ndarray, params: ContentParams) -> np.ndarray:
    """The original's rule: a frame has energy above the file's mean log-energy + log(energy_ratio)."""
    finite = np.isfinite(log_energy)
    threshold = log_energy[finite].mean() + np.log(params.energy_ratio) if finite.any() else np.inf
    return log_energy > threshold


def audible_frames(audio: np.ndarray, params: ContentParams, silence_db: float) -> np.ndarray:
    """A station's rule: a frame has energy where its level, DC removed, is at least `silence_db` dBFS (what the
    daemon calls dead air is silence here too; a pause between words is not, once smoothed)."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, np.float64), params.frame_samples)
    return ac_level_db(frames[:: params.hop_samples][: frame_count(len(audio), params)], axis=1) >= silence_db


def energy_units(active: np.ndarray, params: ContentParams) -> np.ndarray:
    """Whether each 20-ms unit has energy, from the frames that have it, smoothed as the original smooths them (a
    2-state Viterbi that keeps a stretch without energy only when it lasts about 0.4 s or more)."""
    emission = np.log(np.where(np.stack([~active, active], 1), 1 - 1e-10, 1e-10))
    transition = switch_matrix(2, params.energy_switch * np.log(10))
    transition[0, 0] = params.energy_stay_silent
    return viterbi(emission, transition)[:: params.patch_step].astype(bool)


def runs(labels) -> list[tuple[object, int, int]]:
    """[(label, start, stop)] of each run of equal labels."""
    labels = list(labels)
    cuts = [0] + [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]] + [len(labels)]
    return [(labels[a], a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def segment_units(probs: np.ndarray, energy: np.ndarray, params: ContentParams) -> list[str]:
    """A kind for every 20-ms unit: silence where it has no energy, else the network's Viterbi path inside each
    segment of energy."""
    labels = [SILENCE] * len(energy)
    transition = switch_matrix(len(params.labels), params.switch * np.log(10))
    for active, start, stop in runs(energy):
        if active:
            path = viterbi(np.log(probs[start:stop]), transition)
            labels[start:stop] = [params.labels[i] for i in path]
    return labels


class OnlineSmoother:
    """The Viterbi's forward pass for one stream: the best state at each patch given the past only. The switch
    cost is the original's per 20-ms patch scaled by `units` (20-ms units a daemon patch stands for), so evidence
    accumulates at the same rate per second as in the original."""

    def __init__(self, params: ContentParams, units: float, switch: float | None = None):
        self.cost = (params.switch if switch is None else switch) * np.log(10) / units
        self.score: np.ndarray | None = None

    def update(self, probs: np.ndarray) -> int:
        log_p = np.log(np.maximum(probs, 1e-12))
        if self.score is None:
            self.score = log_p
        else:
            best = self.score.max()
            self.score = np.maximum(self.score, best - self.cost) + log_p
            self.score -= self.score.max()  # bounded: only differences matter
        return int(np.argmax(self.score))

    def reset(self) -> None:
        self.score = None


# --- files ---

@dataclass
class FileContent:
    """A file's content, one entry per 20-ms unit (UNIT_SECONDS)."""

    labels: list[str]  # its kind
    probs: np.ndarray | None  # (n_units, 3) the network's probabilities in params.labels order (thirds where it
    # could not score a patch); None where the stage is off

    def seconds(self) -> dict[str, float]:
        """Seconds of each kind, all four kinds present."""
        return {kind: round(UNIT_SECONDS * self.labels.count(kind), 2) for kind in KINDS}

    def span(self, start: float, end: float) -> tuple[str, np.ndarray | None]:
        """The kind most of [start, end) s is (ties to music), and the mean probabilities over it; a span past the
        end stands for the last unit (a window padded out to its length)."""
        a = min(int(start / UNIT_SECONDS), len(self.labels) - 1)
        b = max(a + 1, int(round(end / UNIT_SECONDS)))
        kind = max(KINDS, key=self.labels[a:b].count)
        return kind, None if self.probs is None else self.probs[a:b].mean(axis=0)


def unit_levels(audio: np.ndarray, rate: int) -> np.ndarray:
    """dBFS of each 20-ms unit, DC removed (a constant is as silent as zeros)."""
    size = int(UNIT_SECONDS * rate)
    n = -(-len(audio) // size)
    units = np.zeros(n * size)
    units[: len(audio)] = audio
    return ac_level_db(units.reshape(n, size), axis=1)


def segment(audio: np.ndarray, engine, params: ContentParams, silence_db: float | None) -> FileContent:
    """The original's segmentation of 16-kHz audio (energy, network, Viterbi). Energy by the original's relative
    rule where `silence_db` is None (it calls a pause between words silence, and a constant or a quiet hum
    energy); by the level, as the daemon judges dead air, where it is a number."""
    if silence_db is None:
        mspec, log_energy = content_features(audio, params)
        active = relative_energy(log_energy, params)
    else:  # the file's log-energy is not needed
        mspec = log_mel_energies(emphasised_frames(audio, params), params)
        active = audible_frames(audio, params, silence_db)
    if not len(mspec):
        return FileContent([SILENCE], np.full((1, len(params.labels)), 1 / len(params.labels)))
    x, finite = network_input(file_patches(mspec, params))
    probs = finite_probabilities(engine.infer(x) if finite.any() else np.zeros((len(x), len(params.labels))), finite)
    energy = energy_units(active, params)
    n = min(len(energy), len(probs))
    return FileContent(segment_units(probs[:n], energy[:n], params), probs[:n])
