"""engines/MODEL.md, the card of every shipped model: one section each, rewritten by the script that builds it."""

from __future__ import annotations

from pathlib import Path

MUSICNN_HEADING = "# The second model: musicnn (`--model musicnn`)"  # the paper CNN, then this,
CONTENT_HEADING = "# The content stage: inaSpeechSegmenter's speech / music / noise network"  # then this
SECTION_HEADINGS = (MUSICNN_HEADING, CONTENT_HEADING)


def write_card(card_file: Path, paper: str | None = None, musicnn: str | None = None,
               content: str | None = None) -> None:
    """The card holds every shipped model, one section each in this order (the paper CNN's first, under no
    heading of the list): rewrite the ones given, keep the others as they are."""
    text = card_file.read_text() if card_file.exists() else ""
    sections = {}
    for heading in reversed(SECTION_HEADINGS):  # cut from the last section back, so each is whole
        text, found, rest = text.partition(heading)
        sections[heading] = heading + rest if found else ""
    given = {MUSICNN_HEADING: musicnn, CONTENT_HEADING: content}
    parts = [text if paper is None else paper] + [sections[h] if given[h] is None else given[h]
                                                   for h in SECTION_HEADINGS]
    card_file.write_text("\n\n".join(part.strip("\n") for part in parts if part.strip()) + "\n")
