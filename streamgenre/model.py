"""The ONNX model files and their metadata: genres in output order and the frontend each was trained with.

A model file carries its frontend's parameters; loading it builds the frontend from them (or refuses the model, with
the reason, where this frontend cannot compute them), so the daemon can never feed a model windows computed
differently from the ones it learned on. Two models ship in `engines/`: the paper's CNN (the default) and musicnn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import onnx

from .frontend import FrontendError, FrontendParams

SHIPPED = {"paper": "streamgenre-cnn.onnx", "musicnn": "streamgenre-musicnn.onnx"}  # --model NAME: engines/FILE
DEFAULT_MODEL = "paper"


class ModelError(Exception):
    """A model file that is missing, unreadable or made for another frontend; one line for the user."""


def named_probabilities(genres: tuple[str, ...], probs) -> dict[str, float]:
    """A model output as {genre: probability}, rounded for JSON, the form every message and result uses."""
    return {g: round(float(p), 5) for g, p in zip(genres, probs)}


def shipped_model_path(name: str = DEFAULT_MODEL) -> Path:
    """A model shipped in the top-level `engines/` folder (installed as `streamgenre.engines`)."""
    return Path(str(files("streamgenre.engines").joinpath(SHIPPED[name])))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Model:
    path: Path
    genres: tuple[str, ...]
    params: FrontendParams
    sha256: str
    description: str

    @property
    def name(self) -> str:
        return f"{self.path.name}@{self.sha256[:12]}"


def load_model(model: str | Path | None = None) -> Model:
    """A shipped model by name (`paper`, `musicnn`; None: the default) or a model file by path, with its metadata
    read and its frontend checked."""
    model = str(model or DEFAULT_MODEL)
    path = shipped_model_path(model) if model in SHIPPED else Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file (the shipped ones: {', '.join(SHIPPED)})")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValueError, ... for files that are not models
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if "streamgenre.frontend" not in meta or "streamgenre.genres" not in meta:
        raise ModelError(f"{path}: no streamgenre metadata (frontend parameters and genres); export it with train/")
    try:
        params = FrontendParams.from_metadata(json.loads(meta["streamgenre.frontend"]))
    except (FrontendError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: cannot build its frontend: {e}") from None
    if (shape := _input_shape(proto)) != (1, params.n_mels, params.window_frames):
        raise ModelError(f"{path}: its input is {shape}, not (N, 1, {params.n_mels}, {params.window_frames}) as its "
                         "frontend parameters say")
    return Model(path, tuple(json.loads(meta["streamgenre.genres"])), params, file_sha256(path),
                 meta.get("streamgenre.description", ""))


def _input_shape(proto) -> tuple:
    """The first input's shape after the batch dimension (None for a dimension without a fixed size)."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])
