"""Port inaSpeechSegmenter's speech / music / noise network out of Keras into `engines/streamgenre-content.onnx`.

    python -m train.content_model [--hdf5 ../shared/models/inaspeechsegmenter/keras_speech_music_noise_cnn.hdf5]

The weights are read from the Keras 2 HDF5 with h5py (no TensorFlow), each batch normalisation folded into the
layer before it, and written as one ONNX graph that takes the content frontend's patches the way the genre models
take windows: `mel` (N, 1, bands, frames), here (N, 1, 21, 68), output `probabilities` (N, 3) over speech, music,
noise. The file carries its features' parameters (streamgenre.content.ContentParams) and the licence is shipped
beside it (engines/LICENSE-inaSpeechSegmenter); the card section goes to engines/MODEL.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamgenre.content import CONTENT_MODEL, ContentParams
from streamgenre.model import file_sha256
from train.card import CONTENT_HEADING as HEADING, write_card

OPSET = 17  # what TensorRT 8.6 and later parse, as for the genre models
IR_VERSION = 8  # what torch.onnx writes at opset 17, as for the genre models; onnx 1.23's default, 14, needs
#                 onnxruntime 1.32 (1.30 refuses it), and pyproject admits 1.18, which reads up to IR 10

HDF5 = Path(__file__).resolve().parents[2] / "shared/models/inaspeechsegmenter/keras_speech_music_noise_cnn.hdf5"
HDF5_SHA256 = "f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8"
ENGINES = Path(__file__).resolve().parents[1] / "engines"
DESCRIPTION = ("inaSpeechSegmenter 0.8.0 smn (speech/music/noise) CNN, INA, MIT licence; ported from "
               "keras_speech_music_noise_cnn.hdf5 by streamgenre")


def keras_layers(path: Path) -> list[tuple[str, dict, dict[str, np.ndarray]]]:
    """(class name, config, weights by short name) of every layer of a Keras 2 sequential model file."""
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        layers = []
        for layer in config["config"]["layers"]:
            name = layer["config"]["name"]
            group = f["model_weights"].get(name)
            weights = {}
            if group is not None:
                group.visititems(lambda key, d: weights.__setitem__(key.rsplit("/", 1)[-1].split(":")[0], d[()])
                                 if isinstance(d, h5py.Dataset) else None)
            layers.append((layer["class_name"], layer["config"], weights))
    return layers


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def build_graph(layers, params: ContentParams) -> onnx.ModelProto:
    """The ONNX graph of the Keras layers, batch normalisations folded, on NCHW with one channel."""
    nodes, weights, height, width = [], [], params.patch_frames, params.net_bands
    nodes.append(helper.make_node("Transpose", ["mel"], ["x0"], perm=[0, 1, 3, 2]))  # bands x frames -> frames x bands
    x, counter = "x0", iter(range(1, 1000))

    def name() -> str:
        return f"x{next(counter)}"

    def constant(label: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(value.astype(np.float32), label))
        return label

    pending = None  # the last Conv/Gemm node's weights, awaiting a batch normalisation to fold in
    for kind, config, w in layers:
        if kind in ("Reshape", "Dropout"):  # the input is already patch-shaped; dropout is off at inference
            continue
        if kind == "Conv2D":
            assert config["padding"] == "valid" and config["strides"] == [1, 1] and config["activation"] == "linear"
            kernel, bias = w["kernel"].transpose(3, 2, 0, 1), w["bias"]
            pending = ["Conv", config["name"], kernel, bias]
            height, width = height - kernel.shape[2] + 1, width - kernel.shape[3] + 1
        elif kind == "Dense":
            pending = ["Gemm", config["name"], w["kernel"].T, w["bias"]]
            if config["activation"] == "softmax":
                x = flush(nodes, pending, x, constant, name())
                pending = None
                nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1))
        elif kind == "BatchNormalization":
            scale = w["gamma"] / np.sqrt(w["moving_variance"] + config["epsilon"])
            pending[2] = pending[2] * scale.reshape(-1, *([1] * (pending[2].ndim - 1)))
            pending[3] = (pending[3] - w["moving_mean"]) * scale + w["beta"]
        elif kind == "Activation":
            assert config["activation"] == "relu"
            x = flush(nodes, pending, x, constant, name())
            pending = None
            nodes.append(helper.make_node("Relu", [x], [out := name()]))
            x = out
        elif kind == "MaxPooling2D":
            (kh, kw), (sh, sw) = config["pool_size"], config["strides"]
            if config["padding"] == "same":
                (top, bottom), (left, right) = same_pads(height, kh, sh), same_pads(width, kw, sw)
                height, width = -(-height // sh), -(-width // sw)
            else:
                top = bottom = left = right = 0
                height, width = (height - kh) // sh + 1, (width - kw) // sw + 1
            nodes.append(helper.make_node("MaxPool", [x], [out := name()], kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[top, left, bottom, right]))
            x = out
        elif kind == "Flatten":
            assert height == width == 1, "flattening more than 1x1 would need Keras's channel-last order"
            nodes.append(helper.make_node("Flatten", [x], [out := name()], axis=1))
            x = out
        else:
            raise ValueError(f"layer {kind} is not part of the smn network this port knows")
    graph = helper.make_graph(
        nodes, "inaspeechsegmenter_smn",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", 1, params.net_bands, params.patch_frames])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(params.labels)])],
        weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="streamgenre")


def flush(nodes, pending, x: str, constant, out: str) -> str:
    """Emit the pending Conv or Gemm with its (folded) weights."""
    op, label, kernel, bias = pending
    inputs = [x, constant(f"{label}.weight", kernel), constant(f"{label}.bias", bias)]
    nodes.append(helper.make_node(op, inputs, [out], **({"transB": 1} if op == "Gemm" else {})))
    return out


def export(hdf5: Path = HDF5, out: Path = ENGINES / CONTENT_MODEL) -> Path:
    params = ContentParams()
    proto = build_graph(keras_layers(hdf5), params)
    for key, value in {"streamgenre.content": json.dumps(params.as_metadata()),
                       "streamgenre.description": DESCRIPTION}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    write_card(out.parent / "MODEL.md", content=card(out, hdf5))
    return out


def card(path: Path, hdf5: Path) -> str:
    params = ContentParams()
    return f"""{HEADING}

`{path.name}`: the `smn` model of INA's inaSpeechSegmenter 0.8.0 (Doukhan et al., "An open-source speaker gender
detection framework for monitoring gender equality", ICASSP 2018; its speech/music engine won the MIREX 2018
music-and-speech detection task), copyright INA, MIT licence (`LICENSE-inaSpeechSegmenter`, shipped beside it).
Ported from `{hdf5.name}` (sha256 `{file_sha256(hdf5)}`) by `python -m train.content_model`: the Keras layers
read with h5py, batch normalisations folded, one ONNX graph (opset {OPSET}, dynamic batch). Input `mel`
(N, 1, {params.net_bands}, {params.patch_frames}): one patch of {params.patch_frames} frames x the first
{params.net_bands} of {params.bands} log HTK-mel energies ({params.low_hz:.0f}-{params.high_hz:.0f} Hz, 25-ms frames
every 10 ms at 16 kHz, pre-emphasis {params.preemphasis}), each patch standardised by its own mean and deviation;
output `probabilities` (N, 3) over {", ".join(params.labels)}. Its conventions: speech over music or noise is speech,
singing is music.

- sha256: `{file_sha256(path)}`
- features and smoothing (stored in the file and read on load): `{json.dumps(params.as_metadata())}`
- checked against the original (TensorFlow, `Segmenter(vad_engine='smn')`): see docs/content.md and
  tests/test_content.py
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hdf5", type=Path, default=HDF5)
    args = parser.parse_args()
    if file_sha256(args.hdf5) != HDF5_SHA256:
        raise SystemExit(f"{args.hdf5}: not the smn model this port was checked with (sha256 {HDF5_SHA256})")
    print(export(args.hdf5))


if __name__ == "__main__":
    main()
