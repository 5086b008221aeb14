"""The log-mel frontend shared by training and the daemon, built from the parameters a model was trained with.

Power mel spectrogram (periodic Hann window, no centring or padding, librosa's Slaney mel filterbank) followed by the
model's log, cut into windows of `window_frames` frames every `step_frames` frames. A model file carries these
parameters (`FrontendParams`); the paper's CNN has `PAPER` (the constants of `audio.py`), musicnn other ones. The
batch form (`log_mel`, `windows`) serves training; a `Frontend` runs the same functions on NumPy (CPU) or CuPy (NVIDIA
GPU), for files and for the daemon, where it computes the next step of frames of many streams in one batch and keeps
each stream's previous step to complete its window, so every frame is computed once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import threadpool_limits

from .audio import F_MAX, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, STEP_FRAMES, WINDOW_FRAMES
from .gpu import find_gpu


class FrontendError(ValueError):
    """Input the frontend does not take, or parameters it cannot build; one line for the user."""


LOGS = {  # the compressions a model may ask for, by the name its file gives
    "log1p": lambda xp, mel: xp.log1p(mel),  # the paper's CNN
    "log10(1+10000x)": lambda xp, mel: xp.log10(1 + 10000 * mel),  # musicnn
}


@dataclass(frozen=True)
class FrontendParams:
    """What a model's input is made of; stored in its ONNX file (`as_metadata`) and read back (`from_metadata`)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    f_max: float
    log: str
    window_frames: int
    step_frames: int
    window: str = "hann"
    center: bool = False
    mel: str = "slaney"  # Slaney's mel scale and area normalisation (librosa's default)
    short_fill: str = "zeros"  # how a clip shorter than one window is filled: with silence, or "repeat"ed (musicnn
    # was trained on clips repeated to fill its window)

    @property
    def window_samples(self) -> int:
        """Samples that make exactly one window."""
        return self.n_fft + self.hop_length * (self.window_frames - 1)

    @property
    def step_samples(self) -> int:
        """How far the next window starts."""
        return self.step_frames * self.hop_length

    @property
    def step_span_samples(self) -> int:
        """Samples that make exactly one step of frames."""
        return self.n_fft + self.hop_length * (self.step_frames - 1)

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def step_seconds(self) -> float:
        return self.step_samples / self.sample_rate

    def frame_count(self, n_samples: int) -> int:
        """Frames in a signal of n_samples: only whole frames, no padding."""
        return max(0, 1 + (n_samples - self.n_fft) // self.hop_length)

    def as_metadata(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_metadata(cls, meta: dict) -> "FrontendParams":
        """The parameters a model file gives, or FrontendError saying why this frontend cannot be built from them."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if unknown := sorted(set(meta) - set(fields)):
            raise FrontendError(f"unknown frontend parameters {unknown}")
        if missing := sorted(k for k, f in fields.items() if k not in meta and f.default is dataclasses.MISSING):
            raise FrontendError(f"frontend parameters missing: {missing}")
        numbers = ("sample_rate", "n_fft", "hop_length", "n_mels", "window_frames", "step_frames")
        if bad := [k for k in numbers if type(meta[k]) is not int or meta[k] < 1]:
            raise FrontendError(f"frontend parameters {bad} must be positive whole numbers")
        if not isinstance(meta["f_max"], (int, float)) or not 0 < meta["f_max"] <= meta["sample_rate"] / 2:
            raise FrontendError(f"f_max {meta['f_max']!r} must be above 0 and at most half the sample rate")
        supported = {"window": ("hann",), "center": (False,), "mel": ("slaney",), "log": tuple(LOGS),
                     "short_fill": ("zeros", "repeat")}
        for key, values in supported.items():
            if key in meta and meta[key] not in values:
                raise FrontendError(f"{key} {meta[key]!r} is not one this frontend computes ({', '.join(map(repr, values))})")
        if meta["window_frames"] != 2 * meta["step_frames"]:
            raise FrontendError(f"a window of {meta['window_frames']} frames every {meta['step_frames']}: this frontend "
                                "makes each window of two steps (window_frames = 2 x step_frames)")
        return cls(**{**meta, "f_max": float(meta["f_max"])})


PAPER = FrontendParams(SAMPLE_RATE, N_FFT, HOP_LENGTH, N_MELS, F_MAX, "log1p", WINDOW_FRAMES, STEP_FRAMES)


@lru_cache(maxsize=None)
def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (scipy's get_window('hann', n_fft), what librosa uses)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    hz = np.asarray(hz, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, hz * 3.0 / 200.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * 200.0 / 3.0)


@lru_cache(maxsize=None)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_max: float) -> np.ndarray:
    """The (n_mels, 1 + n_fft // 2) filterbank: triangles evenly spaced on Slaney's mel scale from 0 Hz to f_max,
    each of unit area (librosa.filters.mel's default), computed here so the runtime needs no librosa."""
    fft_hz = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), n_mels + 2))
    rising = (fft_hz[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - fft_hz[None, :]) / np.diff(edges)[1:, None]
    triangles = np.maximum(0, np.minimum(rising, falling))
    return triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def limit_blas_threads() -> None:
    """Use one BLAS thread in this process. The frontend's matrix products are small, and BLAS threads competing
    with ONNX Runtime's own pool made them 25 times slower in the daemon (7.8 ms against 0.29 ms per 128 frames)."""
    threadpool_limits(1, user_api="blas")


@lru_cache(maxsize=None)
def _constants(xp, params: FrontendParams) -> tuple:
    """The window and the transposed filterbank on an array module: float64 on NumPy (its float32 FFT is several
    times slower), float32 on a GPU (cuFFT and cuBLAS are fast there and agree to ~1e-6)."""
    dtype = np.float64 if xp is np else xp.float32
    filters = mel_filters(params.sample_rate, params.n_fft, params.n_mels, params.f_max)
    return xp.asarray(hann_window(params.n_fft), dtype), xp.asarray(filters.T, dtype)


def mel_frames(audio, params: FrontendParams = PAPER, xp=np):
    """Log-mel of every whole frame of (..., n_samples) float32 audio, shaped (..., n_frames, n_mels): the
    row-per-frame form steps are made of. `xp` is the array module the audio lives on (numpy or cupy)."""
    window, filters_t = _constants(xp, params)
    *lead, stride = audio.strides
    shape = (*audio.shape[:-1], params.frame_count(audio.shape[-1]), params.n_fft)
    frames = xp.lib.stride_tricks.as_strided(audio, shape=shape,
                                             strides=(*lead, stride * params.hop_length, stride))
    spectrum = xp.fft.rfft(frames * window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return LOGS[params.log](xp, power @ filters_t).astype(xp.float32)


def check_audio(audio: np.ndarray, sample_rate: int, params: FrontendParams = PAPER) -> np.ndarray:
    """Refuse what the frontend was not built for, instead of silently computing wrong features."""
    if sample_rate != params.sample_rate:
        raise FrontendError(f"the frontend takes {params.sample_rate} Hz audio, got {sample_rate} Hz: resample it first")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise FrontendError(f"the frontend takes mono audio, got an array shaped {audio.shape}: downmix it first")
    return np.ascontiguousarray(audio, dtype=np.float32)


def log_mel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, params: FrontendParams = PAPER) -> np.ndarray:
    """Log-mel spectrogram of mono float32 audio, shaped (n_mels, n_frames) like librosa's."""
    return mel_frames(check_audio(audio, sample_rate, params), params).T


def windows(spectrogram, params: FrontendParams = PAPER, xp=np):
    """Cut a (n_mels, n_frames) spectrogram into (n_windows, n_mels, window_frames) windows every step_frames."""
    size, step = params.window_frames, params.step_frames
    n = 0 if spectrogram.shape[1] < size else 1 + (spectrogram.shape[1] - size) // step
    if not n:
        return xp.zeros((0, params.n_mels, size), xp.float32)
    return xp.stack([spectrogram[:, s : s + size] for s in range(0, n * step, step)])


CPU_CHUNK_STEPS = 2  # steps per NumPy call: bigger batches leave the caches (1,300 against 2,000-2,300 steps/s at 64)


class Frontend:
    """The frontend of one model's parameters on one array module: NumPy on the CPU, or CuPy on an NVIDIA GPU, where
    its windows stay for the engine. Same functions either way; `description` says which one runs and why."""

    def __init__(self, params: FrontendParams = PAPER, xp=np, description: str = "NumPy on the CPU"):
        self.params = params
        self.xp = xp
        self.name = "cpu" if xp is np else "gpu"
        self.description = description
        self._previous = self._no_steps(0)  # each stream's last step of frames

    def _no_steps(self, count: int):
        return self.xp.zeros((count, self.params.n_mels, self.params.step_frames), self.xp.float32)

    def prepare(self) -> None:
        """Build the window and the filterbank now, before serving, rather than in the first tick."""
        _constants(self.xp, self.params)

    def file_windows(self, audio: np.ndarray):
        """All windows of one signal at the model's rate, shaped (n_windows, n_mels, window_frames)."""
        audio = self.xp.asarray(check_audio(audio, self.params.sample_rate, self.params))
        return windows(mel_frames(audio, self.params, self.xp).T, self.params, self.xp)

    def open_streams(self, count: int) -> None:
        """Track `count` streams, numbered from 0, each starting with no previous step."""
        self._previous = self._no_steps(count)

    def reorder(self, slots: list[int | None]) -> None:
        """The streams renumbered (a reload): stream i now was stream slots[i], whose previous step it keeps, or
        is new (None) and starts with none."""
        previous = self._no_steps(len(slots))
        for i, old in enumerate(slots):
            if old is not None:
                previous[i] = self._previous[old]
        self._previous = previous

    def stream_windows(self, streams: list[int], spans: np.ndarray):
        """The window that each step of audio completes, for many streams at once.

        spans: (n, step_span_samples) float32, each the audio of the next step_frames frames of stream streams[i]
        (a stream's steps in their order). Row i of the result is (n_mels, window_frames): that stream's previous
        step followed by this one; for a stream's very first step the first half is zeros.
        """
        xp, params, half = self.xp, self.params, self.params.step_frames
        chunk = CPU_CHUNK_STEPS if xp is np else len(spans)
        new = xp.concatenate([mel_frames(xp.asarray(spans[i : i + chunk]), params, xp)
                              for i in range(0, len(spans), chunk)])
        new = new.transpose(0, 2, 1)  # (n, n_mels, step_frames)
        out = xp.empty((len(spans), params.n_mels, params.window_frames), xp.float32)
        out[:, :, half:] = new
        streams = np.asarray(streams)
        rank = _earlier_occurrences(streams)
        for k in range(int(rank.max(initial=-1)) + 1):  # in rounds, so that each round's previous steps are stored
            rows = np.flatnonzero(rank == k)
            ids, at = xp.asarray(streams[rows]), xp.asarray(rows)
            out[at, :, :half] = self._previous[ids]
            self._previous[ids] = new[at]
        return out


def _earlier_occurrences(values: np.ndarray) -> np.ndarray:
    """For each element, how many times its value occurs before it: [4, 2, 4, 4] -> [0, 0, 1, 2]."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    rank = np.empty(len(values), int)
    rank[order] = np.arange(len(values)) - np.repeat(starts, np.diff(np.r_[starts, len(values)]))
    return rank


def create_frontend(kind: str = "auto", params: FrontendParams = PAPER) -> Frontend:
    """`cpu`, `gpu` (CuPy; FrontendError when there is none), or `auto`: the GPU where CuPy finds one; for the
    parameters of the model it feeds."""
    if kind not in ("auto", "gpu", "cpu"):
        raise FrontendError(f"--frontend {kind!r}: use auto, gpu or cpu")
    if kind == "cpu":
        return Frontend(params, description="NumPy on the CPU (asked for)")
    cupy, about = find_gpu()
    if cupy is not None:
        return Frontend(params, cupy, f"CuPy {cupy.__version__} on {about}" + (" (auto)" if kind == "auto" else ""))
    if kind == "gpu":
        raise FrontendError(f"--frontend gpu: {about}")
    return Frontend(params, description=f"NumPy on the CPU (auto: {about})")
