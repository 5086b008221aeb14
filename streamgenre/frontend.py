"""The log-mel frontend shared by training and the daemon.

Power mel spectrogram (periodic Hann window, no centring or padding, librosa's Slaney mel filterbank) followed by
ln(1 + x), cut into windows of WINDOW_FRAMES frames every STEP_FRAMES frames. The batch form (`log_mel`, `windows`)
serves files and training; `StreamingFrontend` computes each frame once from audio fed in chunks of any size and
yields exactly the windows the batch form yields on the whole signal.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import numpy as np
from threadpoolctl import threadpool_limits

from .audio import F_MAX, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, STEP_FRAMES, WINDOW_FRAMES

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


def mel_frames(audio: np.ndarray) -> np.ndarray:
    """Log-mel of every whole frame, shaped (n_frames, N_MELS): the row-per-frame form the streaming form appends to."""
    n = frame_count(len(audio))
    frames = np.lib.stride_tricks.as_strided(
        audio, shape=(n, N_FFT), strides=(audio.strides[0] * HOP_LENGTH, audio.strides[0]), writeable=False
    )
    spectrum = np.fft.rfft(frames * hann_window(), axis=1)  # float64: numpy's float32 FFT is several times slower
    power = spectrum.real**2 + spectrum.imag**2
    return np.log1p(power @ mel_filters().T).astype(np.float32)


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


def windows(spectrogram: np.ndarray) -> np.ndarray:
    """Cut a (N_MELS, n_frames) spectrogram into (n_windows, N_MELS, WINDOW_FRAMES) windows every STEP_FRAMES."""
    n = 0 if spectrogram.shape[1] < WINDOW_FRAMES else 1 + (spectrogram.shape[1] - WINDOW_FRAMES) // STEP_FRAMES
    starts = np.arange(n) * STEP_FRAMES
    return np.stack([spectrogram[:, s : s + WINDOW_FRAMES] for s in starts]) if n else np.zeros(
        (0, N_MELS, WINDOW_FRAMES), np.float32
    )


class StreamingFrontend:
    """Incremental STFT over a rolling buffer: feed audio in any chunks, get each window as soon as it is complete.

    Keeps the audio not yet framed (less than N_FFT samples) and the last WINDOW_FRAMES frames, so every frame is
    computed once and nothing grows with the stream's length.
    """

    def __init__(self):
        self._pending = np.zeros(0, np.float32)  # samples from the start of the next frame on
        self._frames = np.zeros((WINDOW_FRAMES, N_MELS), np.float32)  # rolling history, newest last
        self.frames_done = 0  # frames computed since the start

    def feed(self, audio: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add audio; return (end_frame, window) for every window completed, window shaped (N_MELS, WINDOW_FRAMES)
        and end_frame the count of frames up to its end."""
        buffer = np.concatenate([self._pending, audio]) if len(self._pending) else np.asarray(audio, np.float32)
        new = mel_frames(buffer)
        self._pending = buffer[len(new) * HOP_LENGTH :]
        ready, start = [], 0
        while start < len(new):  # append in pieces that end on window boundaries
            stop = start + STEP_FRAMES - self.frames_done % STEP_FRAMES
            ready += self._append(new[start:stop])
            start = stop
        return ready

    def _append(self, new: np.ndarray) -> list[tuple[int, np.ndarray]]:
        self._frames = np.roll(self._frames, -len(new), axis=0)
        self._frames[-len(new) :] = new
        self.frames_done += len(new)
        if self.frames_done >= WINDOW_FRAMES and self.frames_done % STEP_FRAMES == 0:
            return [(self.frames_done, self._frames.T.copy())]
        return []
