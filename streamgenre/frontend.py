"""The log-mel frontend shared by training and the daemon.

Power mel spectrogram (periodic Hann window, no centring or padding, librosa's Slaney mel filterbank) followed by
ln(1 + x), cut into windows of WINDOW_FRAMES frames every STEP_FRAMES frames. The batch form (`log_mel`, `windows`)
serves training; a `Frontend` runs the same functions on NumPy (CPU) or CuPy (NVIDIA GPU), for files and for the
daemon, where it computes the next step of frames of many streams in one batch and keeps each stream's previous step
to complete its window, so every frame is computed once.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import numpy as np
from threadpoolctl import threadpool_limits

from .audio import F_MAX, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, STEP_FRAMES, WINDOW_FRAMES
from .gpu import find_gpu

# what a model must have been trained with; stored in the ONNX file and checked when it is loaded
PARAMS = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": N_FFT,
    "hop_length": HOP_LENGTH,
    "n_mels": N_MELS,
    "f_max": F_MAX,
    "window": "hann",
    "center": False,
    "mel": "slaney",
    "log": "log1p",
    "window_frames": WINDOW_FRAMES,
    "step_frames": STEP_FRAMES,
}


class FrontendError(ValueError):
    """Input the frontend does not take."""


@lru_cache(maxsize=None)
def hann_window() -> np.ndarray:
    """Periodic Hann window (scipy's get_window('hann', N_FFT), what librosa uses)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


@lru_cache(maxsize=None)
def mel_filters() -> np.ndarray:
    """The (N_MELS, 1 + N_FFT // 2) filterbank, saved from
    `librosa.filters.mel(sr=22050, n_fft=512, n_mels=64, fmax=10000)` so the runtime needs no librosa."""
    with files("streamgenre.assets").joinpath("mel_filters.npz").open("rb") as f:
        return np.load(f)[f"mel_{N_MELS}"].astype(np.float64)


def limit_blas_threads() -> None:
    """Use one BLAS thread in this process. The frontend's matrix products are small, and BLAS threads competing
    with ONNX Runtime's own pool made them 25 times slower in the daemon (7.8 ms against 0.29 ms per 128 frames)."""
    threadpool_limits(1, user_api="blas")


def frame_count(n_samples: int) -> int:
    """Frames in a signal of n_samples: only whole frames, no padding."""
    return max(0, 1 + (n_samples - N_FFT) // HOP_LENGTH)


@lru_cache(maxsize=None)
def _constants(xp) -> tuple:
    """The window and the transposed filterbank on an array module: float64 on NumPy (its float32 FFT is several
    times slower), float32 on a GPU (cuFFT and cuBLAS are fast there and agree to ~1e-6)."""
    dtype = np.float64 if xp is np else xp.float32
    return xp.asarray(hann_window(), dtype), xp.asarray(mel_filters().T, dtype)


def mel_frames(audio, xp=np):
    """Log-mel of every whole frame of (..., n_samples) float32 audio, shaped (..., n_frames, N_MELS): the
    row-per-frame form steps are made of. `xp` is the array module the audio lives on (numpy or cupy)."""
    window, filters_t = _constants(xp)
    *lead, stride = audio.strides
    shape = (*audio.shape[:-1], frame_count(audio.shape[-1]), N_FFT)
    frames = xp.lib.stride_tricks.as_strided(audio, shape=shape, strides=(*lead, stride * HOP_LENGTH, stride))
    spectrum = xp.fft.rfft(frames * window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return xp.log1p(power @ filters_t).astype(xp.float32)


def check_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Refuse what the frontend was not built for, instead of silently computing wrong features."""
    if sample_rate != SAMPLE_RATE:
        raise FrontendError(f"the frontend takes {SAMPLE_RATE} Hz audio, got {sample_rate} Hz: resample it first")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise FrontendError(f"the frontend takes mono audio, got an array shaped {audio.shape}: downmix it first")
    return np.ascontiguousarray(audio, dtype=np.float32)


def log_mel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-mel spectrogram of mono float32 audio, shaped (N_MELS, n_frames) like librosa's."""
    return mel_frames(check_audio(audio, sample_rate)).T


def windows(spectrogram, xp=np):
    """Cut a (N_MELS, n_frames) spectrogram into (n_windows, N_MELS, WINDOW_FRAMES) windows every STEP_FRAMES."""
    n = 0 if spectrogram.shape[1] < WINDOW_FRAMES else 1 + (spectrogram.shape[1] - WINDOW_FRAMES) // STEP_FRAMES
    if not n:
        return xp.zeros((0, N_MELS, WINDOW_FRAMES), xp.float32)
    return xp.stack([spectrogram[:, s : s + WINDOW_FRAMES] for s in range(0, n * STEP_FRAMES, STEP_FRAMES)])


CPU_CHUNK_STEPS = 2  # steps per NumPy call: bigger batches leave the caches (1,300 against 2,000-2,300 steps/s at 64)


class Frontend:
    """The frontend on one array module: NumPy on the CPU, or CuPy on an NVIDIA GPU, where its windows stay for
    the engine. Same functions either way; `description` says which one runs and why it was chosen."""

    def __init__(self, xp=np, description: str = "NumPy on the CPU"):
        self.xp = xp
        self.name = "cpu" if xp is np else "gpu"
        self.description = description
        self._previous = xp.zeros((0, N_MELS, STEP_FRAMES), xp.float32)  # each stream's last step of frames

    def prepare(self) -> None:
        """Read the filterbank and build the constants now, before serving, rather than in the first tick."""
        _constants(self.xp)

    def file_windows(self, audio: np.ndarray):
        """All windows of one signal at SAMPLE_RATE, shaped (n_windows, N_MELS, WINDOW_FRAMES)."""
        audio = self.xp.asarray(check_audio(audio, SAMPLE_RATE))
        return windows(mel_frames(audio, self.xp).T, self.xp)

    def open_streams(self, count: int) -> None:
        """Track `count` streams, numbered from 0, each starting with no previous step."""
        self._previous = self.xp.zeros((count, N_MELS, STEP_FRAMES), self.xp.float32)

    def reorder(self, slots: list[int | None]) -> None:
        """The streams renumbered (a reload): stream i now was stream slots[i], whose previous step it keeps, or
        is new (None) and starts with none."""
        previous = self.xp.zeros((len(slots), N_MELS, STEP_FRAMES), self.xp.float32)
        for i, old in enumerate(slots):
            if old is not None:
                previous[i] = self._previous[old]
        self._previous = previous

    def stream_windows(self, streams: list[int], spans: np.ndarray):
        """The window that each step of audio completes, for many streams at once.

        spans: (n, STEP_SPAN_SAMPLES) float32, each the audio of the next STEP_FRAMES frames of stream streams[i]
        (a stream's steps in their order). Row i of the result is (N_MELS, WINDOW_FRAMES): that stream's previous
        step followed by this one; for a stream's very first step the first half is zeros.
        """
        xp = self.xp
        chunk = CPU_CHUNK_STEPS if xp is np else len(spans)
        new = xp.concatenate([mel_frames(xp.asarray(spans[i : i + chunk]), xp) for i in range(0, len(spans), chunk)])
        new = new.transpose(0, 2, 1)  # (n, N_MELS, STEP_FRAMES)
        out = xp.empty((len(spans), N_MELS, WINDOW_FRAMES), xp.float32)
        out[:, :, STEP_FRAMES:] = new
        streams = np.asarray(streams)
        rank = _earlier_occurrences(streams)
        for k in range(int(rank.max(initial=-1)) + 1):  # in rounds, so that each round's previous steps are stored
            rows = np.flatnonzero(rank == k)
            ids, at = xp.asarray(streams[rows]), xp.asarray(rows)
            out[at, :, :STEP_FRAMES] = self._previous[ids]
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


def create_frontend(kind: str = "auto") -> Frontend:
    """`cpu`, `gpu` (CuPy; FrontendError when there is none), or `auto`: the GPU where CuPy finds one."""
    if kind not in ("auto", "gpu", "cpu"):
        raise FrontendError(f"--frontend {kind!r}: use auto, gpu or cpu")
    if kind == "cpu":
        return Frontend(description="NumPy on the CPU (asked for)")
    cupy, about = find_gpu()
    if cupy is not None:
        return Frontend(cupy, f"CuPy {cupy.__version__} on {about}" + (" (auto)" if kind == "auto" else ""))
    if kind == "gpu":
        raise FrontendError(f"--frontend gpu: {about}")
    return Frontend(description=f"NumPy on the CPU (auto: {about})")
