import numpy as np
from hypothesis import given, settings, strategies as st

from streamgenre.ring import RingBuffer


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 64), ops=st.lists(st.one_of(st.integers(0, 150), st.just("read")), max_size=40))
def test_reads_are_the_newest_unread_samples_and_losses_are_counted(capacity, ops):
    ring, stream, got = RingBuffer(capacity), [], []
    n = 0
    for op in ops:
        if op == "read":
            out = ring.read_all()
            # what is read is exactly the tail of everything written, and never more than the capacity
            assert len(out) <= capacity
            assert np.array_equal(out, np.array(stream[len(stream) - len(out):], np.float32))
            got.extend(out.tolist())
        else:
            chunk = np.arange(n, n + op, dtype=np.float32)
            n += op
            stream.extend(chunk.tolist())
            ring.write(chunk)
        assert ring.written == len(stream)
        assert ring.available == min(ring.written - ring.read, capacity)
    # every sample written is read, lost (counted) or still waiting
    tail = ring.read_all()
    got.extend(tail.tolist())
    assert len(got) + ring.overwritten == ring.written
    assert got == sorted(got)  # order kept across wrap-around


@given(capacity=st.integers(2, 32), channels=st.integers(1, 2), n=st.integers(0, 100))
def test_multichannel_writes_are_downmixed(capacity, channels, n):
    ring = RingBuffer(capacity)
    frames = np.random.default_rng(n).standard_normal((n, channels)).astype(np.float32)
    ring.write(frames)
    np.testing.assert_allclose(ring.read_all(), frames.mean(axis=1)[-capacity:] if n else [], rtol=1e-6)


def test_free_space_and_arrival_times():
    ring = RingBuffer(10)
    assert ring.free == 10
    ring.write(np.ones(4, np.float32))
    first = ring.arrival_time(4)
    ring.write(np.ones(4, np.float32))
    assert ring.free == 2 and ring.arrival_time(8) >= first and ring.arrival_time(3) == first
