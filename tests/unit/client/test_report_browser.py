"""The report as a browser shows it. Chromium (Debian's package, fetched by tests/browser.py)
opens two reports, one with every plot and one with most plots replaced by the sentence that
says why: no error in the console or the browser's log (the page's Content-Security-Policy
would log one for a script let through unescaped), nothing fetched but the page and its data:
URIs, every plot laid out at a real size with its SVG decoded, and a screenshot in which each
plot has more than a background colour."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from synthqa.client.report import write_report

from ...browser import Browser, chromium
from . import report_runs
from .report_runs import HOSTILE, PLOT_NAMES, line, write_run

# Colours a drawn plot has at least: white, its bars, its axes and labels, antialiasing.
MIN_PLOT_COLOURS = 8


def colours(image: Image.Image) -> int:
    found = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return 1 << 16 if found is None else len(found)


def test_the_report_opens_in_chromium_without_errors_and_with_every_plot_drawn(
    tmp_path: Path
) -> None:
    program = chromium()
    full = report_runs.judged_run(tmp_path)
    with full.open("a", encoding="utf-8") as run:
        run.write(json.dumps(line("manuals/lamps.pdf", 0, 9, question=HOSTILE,
                                  answer=HOSTILE)) + "\n")
    write_report(full, tmp_path / "full.html")
    bare = write_run(tmp_path / "bare.jsonl", [line("people.txt", 0, 0, "custom", name="Ann")])
    write_report(bare, tmp_path / "bare.html")

    with Browser(program) as browser:
        for page, drawn in ((tmp_path / "full.html", set(PLOT_NAMES)),
                            (tmp_path / "bare.html", {"records-per-document", "lengths"})):
            rendered = browser.open(page, "[data-plot]")
            assert rendered.errors() == [], page.name
            assert [url for url in rendered.requests
                    if not url.startswith(("file:", "data:"))] == [], page.name
            elements = {element["id"].removeprefix("plot-"): element
                        for element in rendered.elements}
            assert set(elements) == set(PLOT_NAMES), page.name
            assert {name for name, element in elements.items()
                    if element["tag"] == "img"} == drawn, page.name
            screenshot = Image.open(io.BytesIO(rendered.screenshot))
            assert colours(screenshot) > MIN_PLOT_COLOURS, f"{page.name}: a blank page"
            for name, element in elements.items():
                assert element["width"] > 0 and element["height"] > 0, (page.name, name)
                if name not in drawn:
                    continue
                assert element["decoded"], (page.name, name, "the SVG did not decode")
                box = (element["x"], element["y"], element["x"] + element["width"],
                       element["y"] + element["height"])
                assert colours(screenshot.crop(box)) > MIN_PLOT_COLOURS, (page.name, name)
