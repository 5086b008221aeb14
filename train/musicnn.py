"""The teacher without TensorFlow: musicnn's MSD_musicnn and MSD_vgg (Pons & Serra 2019; ISC licence, Music
Technology Group, Universitat Pompeu Fabra) ported to PyTorch, with weights read from the checkpoints inside the
`musicnn` wheel (`pip install --no-deps musicnn==0.1.0`; nothing of TensorFlow is imported).

Layer for layer what `musicnn/models.py` builds (TensorFlow's NHWC with time as height and mel bands as width
becomes PyTorch's NCHW with the same height and width), in inference mode: batch normalisation with the stored
moving statistics (epsilon 1e-3, TensorFlow's default), no dropout. `train/teacher.py` checks it against the
TensorFlow original where TensorFlow is installed (tests/test_teacher.py).

Input of both: (N, frames, 96) `log10(1 + 10000 x)` of a 96-band mel power spectrogram of 16-kHz audio (n_fft 512,
hop 256): the runtime frontend with MUSICNN's parameters, transposed. musicnn was trained on 187-frame patches of
centred frames; windows of 186 uncentred frames (two steps of 93, as the daemon cuts them) give the same shapes
inside both networks. Output: MSD_musicnn's penultimate layer (200 values) and MSD_vgg's pool5 flattened (256
values), side by side: the embedding the genre head reads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from streamgenre.frontend import FrontendParams
from train.checkpoint import read_checkpoint

# musicnn's input (its config.py: 16 kHz, n_fft 512, hop 256, 96 bands, librosa's default mel up to 8 kHz)
MUSICNN = FrontendParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, f_max=8000.0, log="log10(1+10000x)",
                         window_frames=186, step_frames=93, short_fill="repeat")  # short clips repeated, as trained
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default


def musicnn_folder() -> Path:
    """Where the `musicnn` wheel put its checkpoints (found without importing it: its package imports TensorFlow)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the musicnn weights are not installed: pip install --no-deps musicnn==0.1.0")
    return Path(list(spec.submodule_search_locations)[0])


class BatchNorm(nn.Module):
    """TensorFlow's inference-mode batch normalisation over dimension 1, from the checkpoint's four tensors."""

    def __init__(self, weights: dict, name: str):
        super().__init__()
        scale = weights[f"{name}/gamma"] / np.sqrt(weights[f"{name}/moving_variance"] + BN_EPSILON)
        shift = weights[f"{name}/beta"] - weights[f"{name}/moving_mean"] * scale
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))
        self.register_buffer("shift", torch.from_numpy(shift.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(view) + self.shift.view(view)


def conv2d(weights: dict, name: str) -> nn.Conv2d:
    """A TensorFlow conv2d ([kh, kw, in, out] kernel) as a PyTorch one, unpadded (padding is explicit here)."""
    kernel = weights[f"{name}/kernel"]
    conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2])
    conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    conv.bias.data = torch.from_numpy(weights[f"{name}/bias"].copy())
    return conv


def conv_over_features(weights: dict, name: str) -> nn.Conv1d:
    """musicnn's mid-end conv2d, whose kernel spans the whole feature axis, as the 1-D convolution over time it is."""
    kernel = weights[f"{name}/kernel"][:, :, 0, :]  # (7, features, out)
    conv = nn.Conv1d(kernel.shape[1], kernel.shape[2], kernel.shape[0])
    conv.weight.data = torch.from_numpy(kernel.transpose(2, 1, 0).copy())
    conv.bias.data = torch.from_numpy(weights[f"{name}/bias"].copy())
    return conv


def dense(weights: dict, name: str) -> nn.Linear:
    kernel = weights[f"{name}/kernel"]
    layer = nn.Linear(*kernel.shape)
    layer.weight.data = torch.from_numpy(kernel.T.copy())
    layer.bias.data = torch.from_numpy(weights[f"{name}/bias"].copy())
    return layer


def pad_time(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """TensorFlow's 'same' padding along time (dimension 2 of NCHW): the extra row, for even kernels, goes last."""
    return F.pad(x, (0, 0, (kernel - 1) // 2, kernel // 2))


def max_over_mels(z: torch.Tensor, bn: BatchNorm) -> torch.Tensor:
    """max over the mel axis of bn(relu(z)), musicnn's front-end pooling, from z's max and min alone: relu is
    monotone, and the affine normalisation keeps the order where its scale is positive and reverses it where it is
    negative. Exact, and it spares three passes over the largest maps of the network (N x 204 x time x 59)."""
    extreme = torch.where(bn.scale.view(1, -1, 1) >= 0, z.amax(3), z.amin(3))
    return bn(F.relu(extreme))  # (N, channels, time)


class MusicnnEmbedding(nn.Module):
    """MSD_musicnn up to its penultimate layer: musically motivated front end (timbral 7x38 and 7x67 filters over
    frequency, temporal 128/64/32-frame filters), dense 1-D mid end with residuals, max and mean pooling over time,
    a dense layer of 200."""

    TEMPORAL = ((2, 128), (3, 64), (4, 32))  # (conv index, kernel length in frames)

    def __init__(self, weights: dict):
        super().__init__()
        self.input_bn = BatchNorm(weights, "batch_normalization")
        self.timbral = nn.ModuleList(conv2d(weights, f"conv2d{s}") for s in ("", "_1"))
        self.timbral_bn = nn.ModuleList(BatchNorm(weights, f"batch_normalization_{i}") for i in (1, 2))
        self.temporal = nn.ModuleList(conv2d(weights, f"conv2d_{i}") for i, _ in self.TEMPORAL)
        self.temporal_bn = nn.ModuleList(BatchNorm(weights, f"batch_normalization_{i + 1}") for i, _ in self.TEMPORAL)
        self.midend = nn.ModuleList(conv_over_features(weights, f"conv2d_{i}") for i in (5, 6, 7))
        self.midend_bn = nn.ModuleList(BatchNorm(weights, f"batch_normalization_{i}") for i in (6, 7, 8))
        self.pool_bn = BatchNorm(weights, "batch_normalization_9")
        self.dense = dense(weights, "dense")
        self.dense_bn = BatchNorm(weights, "batch_normalization_10")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x[:, None])  # (N, 1, time, mels)
        x = x.contiguous(memory_format=torch.channels_last)  # 1.5 times faster convolutions on the CPU
        features = [max_over_mels(conv(pad_time(x, 7)), bn) for conv, bn in zip(self.timbral, self.timbral_bn)]
        features += [max_over_mels(conv(pad_time(x, length)), bn)
                     for conv, bn, (_, length) in zip(self.temporal, self.temporal_bn, self.TEMPORAL)]
        front = torch.cat(features, 1)  # (N, 561, time)
        layers, y = [front], front
        for k, (conv, bn) in enumerate(zip(self.midend, self.midend_bn)):
            out = bn(F.relu(conv(F.pad(y, (3, 3)))))
            y = out if k == 0 else out + y
            layers.append(y)
        mid = torch.cat(layers, 1)  # (N, 753, time)
        pooled = torch.stack([mid.amax(2), mid.mean(2)], 2).flatten(1)  # TensorFlow's order: max, mean per feature
        return self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))


class VggEmbedding(nn.Module):
    """MSD_vgg up to pool5: five 3x3 convolutions of 128 filters with batch normalisation and max pooling."""

    POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

    def __init__(self, weights: dict):
        super().__init__()
        self.input_bn = BatchNorm(weights, "batch_normalization")
        self.convs = nn.ModuleList(conv2d(weights, f"{i}CNN") for i in range(1, 6))
        self.bns = nn.ModuleList(BatchNorm(weights, f"batch_normalization_{i}") for i in range(1, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x[:, None]).contiguous(memory_format=torch.channels_last)
        for conv, bn, (size, stride) in zip(self.convs, self.bns, self.POOLS):
            x = F.max_pool2d(bn(F.relu(conv(F.pad(x, (1, 1, 1, 1))))), size, stride)
        return x.permute(0, 2, 3, 1).flatten(1)  # flattened as TensorFlow's NHWC


class TeacherNet(nn.Module):
    """Both MSD networks side by side: (N, frames, 96) -> (N, 456) embeddings."""

    def __init__(self, folder: Path | None = None):
        super().__init__()
        folder = folder or musicnn_folder()
        self.musicnn = MusicnnEmbedding(read_checkpoint(f"{folder / 'MSD_musicnn'}/"))
        self.vgg = VggEmbedding(read_checkpoint(f"{folder / 'MSD_vgg'}/"))
        self.eval()

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.musicnn(spectrograms), self.vgg(spectrograms)], 1)
