"""The paper CNN run incrementally on streams: each window's convolution columns are computed once.

Windows start every `step_frames` frames and the two pooling layers divide time by `stride` (4 x 4 = 16), so the
columns after the second pooling layer line up from one window of a stream to the next: 128 / 16 = 8 new columns per
step. Of a window's 16 columns, the first and the last see the zero padding of the convolutions (they differ from
window to window); the 14 between are the stream's. A stream's next window therefore needs only its 8 new stream
columns (convolved from the frames they see, without padding), its two edge columns, and 6 columns carried from the
previous window; the dense layers then run on the 16 columns as before. That is 40 of the second convolution's 64
columns, which is where the work is.

`split_model` builds two ONNX graphs from a model file's own weights, or says why the model cannot be split (it then
runs whole):
- `first`: the whole network, also giving the columns to carry (a stream's first window, or after a gap);
- `next`: (window, carried columns) -> (probabilities, columns to carry), computing only what is new.
`checked_sessions` opens them and checks them against the whole network; `StreamColumns` keeps each stream's carried
columns between batches.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper

from .frontend import FrontendParams
from .model import Model

PATTERN = ("Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten")  # the paper CNN's convolution part
CARRIED = "carried"  # the `next` graph's input: the columns the stream's previous window carried
CARRIED_OUT = "carried_out"  # both graphs' second output: the columns this window carries to the stream's next
CHECK_TOLERANCE = 1e-5  # on load, the split graphs must give the whole network's probabilities to this


class SplitError(ValueError):
    """A model whose graph is not the paper CNN's convolution part followed by a dense part."""


@dataclass(frozen=True)
class TimeAxis:
    """The convolution part along time: kernel and left/right padding of each convolution, each pooling's stride."""

    kernels: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    pools: tuple[int, int]

    @property
    def stride(self) -> int:
        return self.pools[0] * self.pools[1]

    def frames(self, first: int, last: int) -> tuple[int, int]:
        """First and last frame (unclipped) that the columns first..last after the second pooling layer see."""
        (k1, k2), ((p1, _), (p2, _)), (s1, s2) = self.kernels, self.pads, self.pools
        pool1 = (s2 * first - p2, s2 * last + s2 - 1 - p2 + k2 - 1)
        conv1 = (s1 * pool1[0], s1 * pool1[1] + s1 - 1)
        return conv1[0] - p1, conv1[1] - p1 + k1 - 1

    def pool1_columns(self, first: int, last: int) -> tuple[int, int]:
        (_, k2), (_, (p2, _)), (_, s2) = self.kernels, self.pads, self.pools
        return s2 * first - p2, s2 * last + s2 - 1 - p2 + k2 - 1


@dataclass(frozen=True)
class Layout:
    """Which of a window's columns are edges, new, or carried, and the frames each part is convolved from."""

    columns: int  # after the second pooling layer
    new: int  # stream columns a step adds
    left: int  # edge columns at each side (they see the zero padding)
    right: int
    middle_frames: tuple[int, int]  # first and last frame of the new columns' frames
    left_frames: int  # frames 0..left_frames-1 make the left edge columns
    right_frames: int  # the last right_frames frames make the right edge columns

    @property
    def carried(self) -> int:
        return self.columns - self.left - self.right - self.new


def layout(axis: TimeAxis, window_frames: int, step_frames: int) -> Layout:
    """The column layout of windows of `window_frames` every `step_frames` frames (SplitError where there is none)."""
    stride = axis.stride
    if window_frames % stride or step_frames % stride:
        raise SplitError(f"windows ({window_frames}) and steps ({step_frames}) are not whole columns of {stride}")
    columns, new = window_frames // stride, step_frames // stride
    pool1_count = window_frames // axis.pools[0]

    def is_stream_column(c: int) -> bool:
        first, last = axis.frames(c, c)
        p_first, p_last = axis.pool1_columns(c, c)
        return first >= 0 and last < window_frames and p_first >= 0 and p_last < pool1_count

    stream = [c for c in range(columns) if is_stream_column(c)]
    if not stream or stream != list(range(stream[0], stream[-1] + 1)) or len(stream) < new:
        raise SplitError(f"{len(stream)} stream columns of {columns}: fewer than a step's {new}")
    left, right = stream[0], columns - 1 - stream[-1]
    return Layout(columns, new, left, right, axis.frames(columns - right - new, columns - right - 1),
                  axis.frames(0, left - 1)[1] + 1 if left else 0,
                  window_frames - axis.frames(columns - right, columns - 1)[0] if right else 0)


@dataclass(frozen=True)
class SplitModel:
    first: bytes  # serialized ONNX graphs
    next: bytes
    layout: Layout


def split_model(model: Model) -> SplitModel:
    """The `first` and `next` graphs of a model file, from its own weights (SplitError where it cannot be split)."""
    proto = onnx.load(str(model.path))
    nodes = list(proto.graph.node)
    if tuple(n.op_type for n in nodes[: len(PATTERN)]) != PATTERN:
        raise SplitError("its graph does not start with the paper CNN's convolution part")
    conv1, _, pool1, conv2, _, pool2, flatten = nodes[: len(PATTERN)]
    attrs = [{a.name: helper.get_attribute_value(a) for a in n.attribute} for n in (conv1, pool1, conv2, pool2)]
    for pool in (attrs[1], attrs[3]):
        if list(pool["kernel_shape"]) != list(pool["strides"]) or any(pool.get("pads", [0]*4)):
            raise SplitError("its pooling layers overlap or pad")
    for conv in (attrs[0], attrs[2]):
        if any(s != 1 for s in conv.get("strides", [1, 1])) or any(d != 1 for d in conv.get("dilations", [1, 1])):
            raise SplitError("its convolutions have strides or dilations")
    axis = TimeAxis((attrs[0]["kernel_shape"][1], attrs[2]["kernel_shape"][1]),
                    ((attrs[0]["pads"][1], attrs[0]["pads"][3]), (attrs[2]["pads"][1], attrs[2]["pads"][3])),
                    (attrs[1]["strides"][1], attrs[3]["strides"][1]))
    cols = layout(axis, model.params.window_frames, model.params.step_frames)
    head = nodes[len(PATTERN) :]
    mel, probabilities = proto.graph.input[0], proto.graph.output[0]
    weights = {w.name: w for w in proto.graph.initializer}
    if conv2.input[1] not in weights:
        raise SplitError("its second convolution's weights are not stored in the file")
    channels = weights[conv2.input[1]].dims[0]
    rows = model.params.n_mels // (attrs[1]["strides"][0] * attrs[3]["strides"][0])
    carried_info = helper.make_tensor_value_info(CARRIED, onnx.TensorProto.FLOAT, ["batch", channels, rows, cols.carried])

    def time_slice(source: str, first: int, end: int, out: str) -> list[onnx.NodeProto]:
        names = [f"{out}_{k}" for k in ("starts", "ends", "axes")]
        bounds = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(np.array([v], np.int64)))
                  for n, v in zip(names, (first, end, 3))]
        return [*bounds, helper.make_node("Slice", [source, *names], [out])]

    def conv_part(source: str, prefix: str, pad_left: bool, pad_right: bool) -> list[onnx.NodeProto]:
        """The convolution part on `source` frames, padding time only at the window's own edges."""
        out = []
        for k, node in enumerate(nodes[:6]):
            inputs = [source if k == 0 else f"{prefix}{k - 1}", *node.input[1:]]
            kwargs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Conv":
                h0, t0, h1, t1 = kwargs["pads"]
                kwargs["pads"] = [h0, t0 if pad_left else 0, h1, t1 if pad_right else 0]
            out.append(helper.make_node(node.op_type, inputs, [f"{prefix}{k}"], **kwargs))
        return out

    window, (first, last) = model.params.window_frames, cols.middle_frames
    parts = [("left", 0, cols.left_frames, True, False), ("middle", first, last + 1, False, False),
             ("right", window - cols.right_frames, window, False, True)]
    parts = [p for p in parts if p[2] > p[1]]  # no edge columns where the convolutions do not pad
    next_nodes = [node for name, begin, end, pad_left, pad_right in parts
                  for node in (*time_slice(mel.name, begin, end, f"{name}_frames"),
                               *conv_part(f"{name}_frames", name, pad_left, pad_right))]
    made = [name for name, *_ in parts]
    columns = [*(["left5"] if "left" in made else []), CARRIED, "middle5", *(["right5"] if "right" in made else [])]
    next_nodes += [helper.make_node("Concat", columns, [pool2.output[0]], axis=3),
                   *time_slice("middle5", cols.new - cols.carried, cols.new, CARRIED_OUT), flatten, *head]
    first_nodes = [*nodes, *time_slice(pool2.output[0], cols.columns - cols.right - cols.carried,
                                      cols.columns - cols.right, CARRIED_OUT)]
    carried_out = helper.make_tensor_value_info(CARRIED_OUT, onnx.TensorProto.FLOAT,
                                                ["batch", channels, rows, cols.carried])
    graphs = []
    for name, graph_nodes, inputs in (("first", first_nodes, [mel]), ("next", next_nodes, [mel, carried_info])):
        graph = helper.make_graph(graph_nodes, f"{proto.graph.name}-{name}", inputs, [probabilities, carried_out],
                                  proto.graph.initializer)
        made = helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
        onnx.checker.check_model(made)
        graphs.append(made.SerializeToString())
    return SplitModel(*graphs, cols)


def checked_sessions(split: SplitModel, params: FrontendParams, whole: onnxruntime.InferenceSession,
                     open_session: Callable[[bytes], onnxruntime.InferenceSession]) -> tuple:
    """The `first` and `next` sessions, opened with `open_session`, once two consecutive windows of random frames
    gave the `whole` network's probabilities through them: SplitError otherwise (a model whose shape the layout
    misreads runs whole rather than wrong)."""
    frames = np.random.default_rng(0).uniform(0, 5, (1, 1, params.n_mels, params.window_frames + params.step_frames))
    frames = frames.astype(np.float32)
    pair = np.concatenate([frames[..., : params.window_frames], frames[..., params.step_frames :]])
    try:
        sessions = open_session(split.first), open_session(split.next)
        want = whole.run(None, {"mel": pair})[0]
        first, carried = sessions[0].run(None, {"mel": pair[:1]})
        following = sessions[1].run(None, {"mel": pair[1:], CARRIED: carried})[0]
    except Exception as e:  # onnxruntime's errors have no common base class
        raise SplitError(f"its split graphs do not run ({type(e).__name__})") from None
    error = float(np.abs(np.concatenate([first, following]) - want).max())
    if not error <= CHECK_TOLERANCE:
        raise SplitError(f"its split graphs differ from the whole network by {error:.1e}")
    return sessions


class StreamColumns:
    """Each stream's carried columns from its latest window, for its next one. A window whose stream's previous
    window is not here (its first, one after a gap, or two of one stream in one batch) is computed whole."""

    def __init__(self):
        self._carried: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # stream -> (window number, columns)

    def plan(self, streams: list[tuple[object, int]]) -> tuple[list[int], list[int], np.ndarray | None]:
        """For (stream, window number) pairs: the indices computed whole, those computed from carried columns, and
        the latter's carried columns stacked."""
        whole, following, carried = [], [], []
        for i, (stream, number) in enumerate(streams):
            last = self._carried.get(stream)
            if last is not None and last[0] == number - 1:
                following.append(i)
                carried.append(last[1])
            else:
                whole.append(i)
        return whole, following, np.stack(carried) if carried else None

    def keep(self, streams: list[tuple[object, int]], indices: list[int], columns: np.ndarray) -> None:
        for i, c in zip(indices, columns):
            stream, number = streams[i]
            last = self._carried.get(stream)
            if last is None or last[0] < number:
                self._carried[stream] = (number, c)
