"""The paper's CNN (Dong 2018), exactly: nothing here may change without changing what the paper describes."""

from __future__ import annotations

import torch
from torch import nn

from streamgenre.audio import N_MELS, WINDOW_FRAMES


class PaperCNN(nn.Module):
    """Input (batch, 1, 64, 256) log-mel; output logits over genres (softmax is added on export)."""

    def __init__(self, n_genres: int = 10, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, (3, 3), padding=(1, 1)),
            nn.ReLU(),
            nn.MaxPool2d((2, 4)),
            nn.Conv2d(64, 64, (3, 5), padding=(1, 2)),
            nn.ReLU(),
            nn.MaxPool2d((2, 4)),
        )
        flat = 64 * (N_MELS // 4) * (WINDOW_FRAMES // 16)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, 32), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(32, n_genres))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.features(x)))


class WithSoftmax(nn.Module):
    """What is exported: windows in, probabilities out."""

    def __init__(self, net: PaperCNN):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)
