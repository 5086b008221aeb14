"""The live terminal view of `streamgenre listen`: what is on air (music, TALK, NOISE, DEAD AIR), a bar per genre for
the running average of the music, the top genre and the state of the input."""

from __future__ import annotations

from .content import MUSIC, SAID
from .pipeline import Stream

BAR = 40
CLEAR = "\x1b[H\x1b[2J"


def render(stream: Stream, genres: tuple[str, ...], model_name: str, engine: str) -> str:
    source, message = stream.source, stream.last
    counters = stream.counters()
    meter = max(0, min(BAR, int((stream.level_db + 60) / 60 * BAR)))
    lines = [
        f"streamgenre  {stream.name} ({source.kind})  model {model_name}  engine {engine}",
        f"input  {stream.level_db:6.1f} dBFS [{'#' * meter}{'.' * (BAR - meter)}]  "
        f"dropped {counters['samples_overwritten']} samples, {counters['overflows']} overflows, "
        f"{counters['late_windows']} late windows",
    ]
    if source.error:
        lines.append(f"status {source.error}")
    elif stream.exhausted and source.kind == "file":
        lines.append("status the file has ended")
    if message is None and source.kind == "url" and not source.ring.written and not source.error:
        lines.append(f"status connecting to {source.shown} ...")
    if message is None:
        lines.append("waiting for the first window (about 3 s of audio) ...")
    else:
        kind = message["content"]
        now = f"{message['genre'].upper()}  {message['confidence']:.2f}" if kind == MUSIC else SAID[kind].upper()
        if message["content_probabilities"]:
            now += "   (" + "  ".join(f"{k} {p:.2f}" for k, p in message["content_probabilities"].items()) + ")"
        lines.append(f"now    {now}   "
                     f"window {message['seq']} at {message['time']:.1f} s, latency {message['latency_ms']:.0f} ms")
        if message["title"]:
            lines.append(f"title  {message['title']}")
        lines.append("")
        lines.append(f"running average of the music ({stream.average.spec}):")
        for genre in genres:
            p = message["average"][genre]
            lines.append(f"{genre:>10} {'█' * round(p * BAR)}{'░' * (BAR - round(p * BAR))} {p:5.2f}")
    lines.append("")
    lines.append("Ctrl-C to stop")
    return CLEAR + "\n".join(lines) + "\n"
