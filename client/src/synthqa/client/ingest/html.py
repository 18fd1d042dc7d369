"""HTML: the main content only, with trafilatura (navigation, headers, footers, cookie banners
and scripts gone; tables kept), as Markdown so that headings give each part its path."""

from __future__ import annotations

import trafilatura

from .errors import ExtractionError
from .plain import markdown_regions
from .source_map import Extracted


def extract_html(data: bytes) -> Extracted:
    markdown = trafilatura.extract(
        data, output_format="markdown", include_tables=True, include_comments=False,
        include_images=False, include_links=False, favor_recall=True)
    if not markdown or not markdown.strip():
        raise ExtractionError("an HTML page with no main text found")
    return markdown_regions(markdown, "html")
