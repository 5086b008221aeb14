"""Prometheus metrics for `GET /metrics`.

Per-stream counts are read from the streams' own counters at scrape time (no second bookkeeping); the latency and
batch-size histograms are observed by the pipeline as it runs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .content import KINDS

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# per-stream counter: (metric name, help, key in Stream.counters())
STREAM_COUNTERS = (
    ("streamgenre_windows", "Windows classified", "windows"),
    ("streamgenre_late_windows", "Windows sent more than 0.5 s after their last sample arrived", "late_windows"),
    ("streamgenre_skipped_windows", "Windows skipped because the pipeline fell behind and caught up",
     "skipped_windows"),
    ("streamgenre_audio_overwritten_samples", "Samples lost because the pipeline fell behind", "samples_overwritten"),
    ("streamgenre_input_overflows", "Sound-card input overflows reported by PortAudio", "overflows"),
    ("streamgenre_reconnects", "Reconnections of network streams", "reconnects"),
    ("streamgenre_audio_samples", "Samples received from the source", "samples_written"),
    ("streamgenre_replaced_samples", "NaN or infinite samples from the source, replaced by silence",
     "replaced_samples"),
    ("streamgenre_skipped_packets", "Compressed audio packets that did not decode, skipped", "skipped_packets"),
    ("streamgenre_invalid_windows", "Windows whose probabilities were not finite (not sent)", "invalid_windows"),
)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, descriptors
        self.latency = Histogram("streamgenre_latency_seconds", "From a window's last sample arriving to its message",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("streamgenre_engine_batch_size", "Windows per engine call",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.model = Info("streamgenre_model", "The model, engine and frontend in use", registry=self.registry)
        self.tick_errors = Counter("streamgenre_pipeline_tick_errors", "Pipeline ticks that failed (windows lost)",
                                   registry=self.registry)

    def watch(self, streams, broadcaster, handshakes) -> None:
        """Report the streams' counters, the broadcaster's clients and the connections evicted at every scrape."""
        self.registry.register(_Collector(streams, broadcaster, handshakes))

    def text(self) -> bytes:
        return generate_latest(self.registry)


def on_air(streams):
    """What each stream airs, from its latest message, for boards over time: its running average per genre, and its
    content as a state set (1 for the kind of its latest window, 0 for the others)."""
    genre = GaugeMetricFamily("streamgenre_genre", "The running average's probability of each genre (what the "
                              "music before the latest window was)", labels=["stream", "genre"])
    content = GaugeMetricFamily("streamgenre_content", "1 for what the stream's latest window is (music, speech, "
                                "noise or silence), 0 for the others", labels=["stream", "content"])
    for stream in streams:
        last = stream.last
        if last is None:
            continue
        for name, p in last["average"].items():
            genre.add_metric([stream.name, name], p)
        for kind in KINDS:
            content.add_metric([stream.name, kind], float(last["content"] == kind))
    yield genre
    yield content


class _Collector:
    def __init__(self, streams, broadcaster, handshakes):
        self.streams, self.broadcaster, self.handshakes = streams, broadcaster, handshakes

    def collect(self):
        for name, text, key in STREAM_COUNTERS:
            family = CounterMetricFamily(name, text, labels=["stream"])
            for stream in self.streams:
                family.add_metric([stream.name], stream.counters()[key])
            yield family
        up = GaugeMetricFamily("streamgenre_source_up", "1 while the source delivers audio", labels=["stream"])
        for stream in self.streams:
            up.add_metric([stream.name], 0 if stream.problem() else 1)
        yield up
        dead_air = GaugeMetricFamily("streamgenre_dead_air_seconds", "Length of the stream's current dead air (0 "
                                     "while there is sound)", labels=["stream"])
        for stream in self.streams:
            dead_air.add_metric([stream.name], stream.dead_air_length())
        yield dead_air
        yield from on_air(self.streams)
        b = self.broadcaster
        yield GaugeMetricFamily("streamgenre_clients", "Connected WebSocket clients", value=len(b.clients))
        yield CounterMetricFamily("streamgenre_client_dropped_messages", "Messages dropped for slow clients",
                                  value=b.dropped_total + sum(b.dropped(c) for c in b.clients))
        yield CounterMetricFamily("streamgenre_client_ignored_messages", "Client messages that were not subscriptions",
                                  value=b.ignored_messages)
        yield CounterMetricFamily("streamgenre_connections_evicted", "Connections closed before their handshake: "
                                  "the longest waiting when too many waited", value=self.handshakes.evicted)
