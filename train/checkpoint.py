"""Read a TensorFlow checkpoint (a tensor bundle: `<prefix>.index` and `<prefix>.data-00000-of-00001`) without
TensorFlow, so musicnn's published weights can be used by the PyTorch port with nothing but NumPy.

The index is a LevelDB table (uncompressed blocks of prefix-compressed keys) mapping each variable's name to a
BundleEntryProto: dtype, shape, and where its little-endian bytes lie in the data file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}  # TensorFlow's DataType enum


class CheckpointError(ValueError):
    """A file that is not a readable single-shard tensor bundle."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes):
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        kind = tag & 7
        if kind == 0:
            value, pos = _varint(buf, pos)
        elif kind == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif kind == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif kind == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        else:
            raise CheckpointError(f"unsupported protobuf wire type {kind}")
        yield tag >> 3, value


def _block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block."""
    if table[offset + size] != 0:
        raise CheckpointError("compressed index blocks are not supported")
    data = table[offset : offset + size]
    n_restarts = struct.unpack_from("<I", data, len(data) - 4)[0]
    end, pos, key, entries = len(data) - 4 * (n_restarts + 1), 0, b"", []
    while pos < end:
        shared, pos = _varint(data, pos)
        own, pos = _varint(data, pos)
        length, pos = _varint(data, pos)
        key = key[:shared] + data[pos : pos + own]
        pos += own
        entries.append((key, data[pos : pos + length]))
        pos += length
    return entries


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint, by variable name."""
    prefix = str(prefix)
    table = Path(prefix + ".index").read_bytes()
    if len(table) < 48 or struct.unpack_from("<Q", table, len(table) - 8)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{prefix}.index: not a TensorFlow checkpoint index")
    pos = len(table) - 48
    _, pos = _varint(table, pos)  # the metaindex block, unused
    _, pos = _varint(table, pos)
    index_offset, pos = _varint(table, pos)
    index_size, _ = _varint(table, pos)
    data = Path(prefix + ".data-00000-of-00001").read_bytes()
    tensors = {}
    for _, handle in _block(table, index_offset, index_size):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block(table, offset, size):
            if key:  # the empty key holds the bundle's header
                tensors[key.decode()] = _tensor(value, data)
    return tensors


def _tensor(entry: bytes, data: bytes) -> np.ndarray:
    fields = dict(_proto_fields(entry))
    if fields.get(3, 0) != 0 or 7 in fields:
        raise CheckpointError("sharded or sliced checkpoints are not supported")
    dtype = DTYPES.get(fields.get(1))
    if dtype is None:
        raise CheckpointError(f"unsupported tensor dtype {fields.get(1)}")
    shape = [dict(_proto_fields(dim)).get(1, 0) for n, dim in _proto_fields(fields.get(2, b"")) if n == 2]
    offset, size = fields.get(4, 0), fields.get(5, 0)
    return np.frombuffer(data, dtype, size // np.dtype(dtype).itemsize, offset).reshape(shape).copy()
