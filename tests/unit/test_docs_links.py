"""The README and docs/ link where they say: every relative link names a file or folder that
exists and, with an anchor, a heading in that file (GitHub's anchor rules); every benchmark run
they cite by its time is still in bench/results/."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from ..paths import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)
# [text](target) and ![alt](target); the target may have a "title" after it.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# A benchmark run's name: the time it started, as its files in bench/results/ begin.
RUN = re.compile(r"\b(20\d{6}-\d{6})\b")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and inline code, where links and headings live."""
    return FENCE.sub("", markdown)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup reduced to its text, lowercased, every
    character but letters, digits, spaces, '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor in a page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The relative link targets of a page, in order: external URLs left out."""
    text = INLINE_CODE.sub("", prose(page.read_text(encoding="utf-8")))
    return [target for target in LINK.findall(text) if target and not SCHEME.match(target)]


def broken(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination):
            problems.append(f"{target}: no such heading")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    assert broken(page) == []


def test_every_benchmark_run_the_pages_cite_is_kept() -> None:
    kept = {path.name[:15] for path in (REPO / "bench" / "results").glob("20*")}
    for page in PAGES:
        cited = set(RUN.findall(page.read_text(encoding="utf-8")))
        assert cited <= kept, f"{page.name} cites runs no longer in bench/results: " \
            f"{sorted(cited - kept)}"


def test_the_pages_are_there() -> None:
    assert {p.name for p in PAGES} >= {"README.md", "contract.md", "operations.md",
                                        "testing.md", "performance.md", "architecture.md"}


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Replicas and Kubernetes", "replicas-and-kubernetes"),
        ("Where the gap at saturation goes (2026-12-06)",
         "where-the-gap-at-saturation-goes-2026-12-06"),
        ("What the profiles showed, and what changed", "what-the-profiles-showed-and-what-changed"),
        ("Lifecycle: shutdown and engine death", "lifecycle-shutdown-and-engine-death"),
        ("The `synthqa` CLI", "the-synthqa-cli"),
        ("snake_case and dashes-kept", "snake_case-and-dashes-kept"),
        ("A [linked](x.md) heading", "a-linked-heading"),
    ],
)
def test_anchor_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_checker_that_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok](other.md#twice-1) [ok](#page) [web](https://example.com/x#y)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) [bad here](#nowhere)\n"
        "`[not a link](missing.md)`\n\n"
        "```\n[not a link either](missing.md)\n```\n",
        encoding="utf-8",
    )
    assert broken(page) == [
        "missing.md: no such file",
        "other.md#nowhere: no such heading",
        "#nowhere: no such heading",
    ]
