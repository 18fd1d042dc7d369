"""The seeded corpus `ingest_bench` reads: files of every kind the client extracts, at the
sizes users have them. PDFs of several pages with a table on every other page, web pages with
their menus, related links, cookie banner and footer around the article, Word files with
headings, bulleted lists and tables, decks with speaker notes, Markdown, UTF-16 text (with its
byte-order mark), cp1252 text (no mark: charset-normalizer finds the encoding) and gzipped
text. The text is sentences drawn from `corpus.txt` with a fixed seed; the files are made by
the tests' own builders (tests/made_files.py), so the bench and the tests read the same kind
of file."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .workload import CORPUS, sample_document, sentences

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import made_files  # noqa: E402

# Each format: its file name's ending and what its throughput is counted in.
FORMATS: dict[str, tuple[str, str]] = {
    "pdf": (".pdf", "pages"),
    "html": (".html", "documents"),
    "docx": (".docx", "documents"),
    "pptx": (".pptx", "slides"),
    "markdown": (".md", "documents"),
    "utf16": (".txt", "documents"),
    "cp1252": (".txt", "documents"),
    "gz": (".txt.gz", "documents"),
}
# Non-ASCII sentences, one in each paragraph of the encoded texts (so that cp1252 text is not
# also valid UTF-8, and UTF-16 carries more than ASCII).
ACCENTED = ("Le phare de Cordouan veille sur l’estuaire, été comme hiver.",
            "Der Leuchtturm von Roter Sand stand auf einem Caisson — bis 1964 bemannt.",
            "El faro de Hércules guía a los barcos desde la época romana.",
            "A keeper’s log noted “heavy fog” and the horn’s every blast.")


@dataclass(frozen=True)
class Sizes:
    """Ranges (inclusive) each file's size is drawn from."""

    pdf_pages: tuple[int, int]
    # Sections of a web page, Word file or Markdown file.
    sections: tuple[int, int]
    slides: tuple[int, int]
    # Characters of a plain text file (UTF-16, cp1252, .gz).
    text_chars: tuple[int, int]


# What users hand in: reports of a few pages to a dozen, decks of 8 to 20 slides.
LARGE = Sizes(pdf_pages=(4, 12), sections=(4, 8), slides=(8, 20), text_chars=(8_000, 30_000))
# For the end-to-end runs on the tiny model: a chunk or two of 512 tokens per document.
SMALL = Sizes(pdf_pages=(1, 2), sections=(2, 3), slides=(3, 6), text_chars=(1_500, 4_000))


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    format: str
    # Pages of a PDF, slides of a deck, 1 for any other file.
    units: int
    size: int


def spread(total: int, formats: Sequence[str] = tuple(FORMATS)) -> dict[str, int]:
    """`total` files over the formats as evenly as it goes, the first formats taking the
    remainder."""
    share, extra = divmod(total, len(formats))
    return {name: share + (index < extra) for index, name in enumerate(formats)}


def build_corpus(folder: Path, counts: Mapping[str, int], sizes: Sizes, seed: int = 20261207,
                 shuffle: bool = False) -> list[CorpusFile]:
    """The files, `doc-NNNN<ending>` in `folder`, grouped by format in the order of `counts`,
    or in a seeded mixed order with `shuffle` (a stream of mixed documents). The same
    arguments give the same text on any machine."""
    rng = random.Random(seed)
    pool = sentences(CORPUS.read_text(encoding="utf-8"))
    words = sorted({word.strip(",.;:!?'\"-").capitalize() for sentence in pool
                    for word in sentence.split() if len(word) > 4})
    words = [word for word in words if word.isalpha()]
    kinds = [name for name, count in counts.items() for _ in range(count)]
    if shuffle:
        rng.shuffle(kinds)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index, kind in enumerate(kinds):
        path = folder / f"doc-{index:04d}{FORMATS[kind][0]}"
        units = _MAKERS[kind](path, _Content(rng, pool, words), sizes)
        made.append(CorpusFile(path, kind, units, path.stat().st_size))
    return made


@dataclass
class _Content:
    rng: random.Random
    pool: list[str]
    words: list[str]

    def paragraph(self, accented: bool = False) -> str:
        chosen = [self.rng.choice(self.pool) for _ in range(self.rng.randint(3, 6))]
        if accented:
            chosen.insert(self.rng.randrange(len(chosen)), self.rng.choice(ACCENTED))
        return " ".join(chosen)

    def title(self, count: int = 3) -> str:
        return " ".join(self.rng.choice(self.words) for _ in range(count))

    def text(self, chars: int, accented: bool = False) -> str:
        paragraphs: list[str] = []
        while sum(len(p) + 2 for p in paragraphs) < chars:
            paragraphs.append(self.paragraph(accented))
        return "\n\n".join(paragraphs) + "\n"

    def table(self, rows: int) -> list[list[str]]:
        """A header and rows of a name and three figures, as a report's table has."""
        header = ["Station", "Year lit", "Height (m)", "Range (nmi)"]
        return [header] + [[self.title(1), str(self.rng.randint(1700, 1990)),
                            f"{self.rng.uniform(8, 60):.1f}", str(self.rng.randint(5, 28))]
                           for _ in range(rows)]


def _pdf(path: Path, content: _Content, sizes: Sizes) -> int:
    pages = content.rng.randint(*sizes.pdf_pages)
    texts = [content.title(4) + ". " + sample_document(content.rng, content.pool, 1_700)
             for _ in range(pages)]
    tables = [content.table(7) if page % 2 == 0 else [] for page in range(pages)]
    made_files.pdf(path, texts, tables=tables)
    return pages


def _html(path: Path, content: _Content, sizes: Sizes) -> int:
    sections = [("" if number == 0 else content.title(),
                 [content.paragraph() for _ in range(content.rng.randint(2, 4))])
                for number in range(content.rng.randint(*sizes.sections))]
    links = [content.title(2) for _ in range(60)]
    made_files.html(path, content.title(5), sections, links=links)
    return 1


def _docx(path: Path, content: _Content, sizes: Sizes) -> int:
    blocks: list[tuple[str, object]] = [("h1", content.title(4))]
    for number in range(content.rng.randint(*sizes.sections)):
        blocks.append(("h2", content.title()))
        blocks += [("p", content.paragraph()) for _ in range(content.rng.randint(2, 3))]
        blocks += [("bullet", content.rng.choice(content.pool))
                   for _ in range(content.rng.randint(3, 5))]
        if number % 2 == 1:
            blocks.append(("table", content.table(5)))
    made_files.docx(path, blocks)
    return 1


def _pptx(path: Path, content: _Content, sizes: Sizes) -> int:
    slides = []
    for number in range(content.rng.randint(*sizes.slides)):
        body = "\n".join(content.rng.choice(content.pool)[:90]
                         for _ in range(content.rng.randint(3, 5)))
        notes = "" if number % 4 == 3 else content.paragraph()
        slides.append((content.title(), body, notes))
    made_files.pptx(path, slides)
    return len(slides)


def _markdown(path: Path, content: _Content, sizes: Sizes) -> int:
    parts = [f"# {content.title(4)}"]
    for _ in range(content.rng.randint(*sizes.sections)):
        parts.append(f"## {content.title()}")
        parts += [content.paragraph() for _ in range(content.rng.randint(2, 4))]
        parts.append("\n".join(f"- {content.rng.choice(content.pool)}" for _ in range(3)))
    made_files.markdown(path, "\n\n".join(parts) + "\n")
    return 1


def _utf16(path: Path, content: _Content, sizes: Sizes) -> int:
    made_files.utf16_text(path, content.text(content.rng.randint(*sizes.text_chars), True))
    return 1


def _cp1252(path: Path, content: _Content, sizes: Sizes) -> int:
    made_files.latin1_text(path, content.text(content.rng.randint(*sizes.text_chars), True),
                           encoding="cp1252")
    return 1


def _gz(path: Path, content: _Content, sizes: Sizes) -> int:
    inner = path.with_suffix("")  # doc-NNNN.txt, gzipped beside it, then removed
    inner.write_text(content.text(content.rng.randint(*sizes.text_chars)), encoding="utf-8")
    made_files.gzipped(path, inner)
    inner.unlink()
    return 1


_MAKERS = {"pdf": _pdf, "html": _html, "docx": _docx, "pptx": _pptx, "markdown": _markdown,
           "utf16": _utf16, "cp1252": _cp1252, "gz": _gz}
