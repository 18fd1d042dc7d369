"""Plain text and Markdown, in any common encoding: a byte-order mark names UTF-8, UTF-16 or
UTF-32; without one, UTF-8 if the bytes are valid UTF-8, else the encoding
charset-normalizer finds most likely (Latin-1, cp1252, UTF-16 without a mark, ...)."""

from __future__ import annotations

import re

from charset_normalizer import from_bytes

from .errors import ExtractionError
from .source_map import Extracted, TextBuilder

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
         (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_TIE_PREFERENCE = ("utf_8", "cp1252", "latin_1", "iso8859_15")
# An ATX heading: one to six #, a space, the title (closing #s dropped).
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")


def decode(data: bytes) -> str:
    """The text, newlines as "\\n"."""
    text = _decoded(data)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decoded(data: bytes) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as error:
                raise ExtractionError(f"not valid {codec} after its byte-order mark "
                                      f"({error.reason} at byte {error.start})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ExtractionError("not text in any encoding charset-normalizer recognises")
    # Short Western text often scores the same in cp1250 and cp1252; the single-byte encoding
    # most files in the wild use wins such a tie.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    for preferred in _TIE_PREFERENCE:
        for match in tied:
            if match.encoding == preferred:
                return str(match)
    return str(best)


def extract_text(data: bytes) -> Extracted:
    builder = TextBuilder("text")
    builder.add(decode(data))
    return builder.build()


def extract_markdown(data: bytes) -> Extracted:
    """Markdown as written, each section mapped to its heading path."""
    return markdown_regions(decode(data), "markdown")


def markdown_regions(text: str, kind: str) -> Extracted:
    """Blocks of Markdown text (split at blank lines) with the headings above them."""
    builder = TextBuilder(kind)
    path: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text):
        first = block.strip().split("\n", 1)[0]
        if match := _HEADING.match(first):
            level = len(match.group(1))
            path = path[:level - 1] + [""] * max(0, level - 1 - len(path)) + [match.group(2)]
        builder.add(block, heading=tuple(part for part in path if part))
    return builder.build()
