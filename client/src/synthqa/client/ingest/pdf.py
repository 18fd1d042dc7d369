"""PDF: the text layer, page by page, with pypdfium2 (PDFium, the engine of Chrome's viewer:
fast, robust on odd files, Apache-2.0/BSD-3). Table cells come as the text rows PDFium reads
them in. A PDF without a text layer (a scan) is refused: OCR is not supported."""

from __future__ import annotations

import pypdfium2 as pdfium

from .errors import ExtractionError
from .source_map import Extracted, TextBuilder


def extract_pdf(data: bytes) -> Extracted:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise ExtractionError("an encrypted PDF (it needs a password)") from None
        raise ExtractionError(f"not a readable PDF ({error})") from None
    builder = TextBuilder("pdf", page_count=len(document))
    try:
        for index in range(len(document)):
            page = document[index]
            try:
                text_page = page.get_textpage()
                text = text_page.get_text_range()
                text_page.close()
            finally:
                page.close()
            builder.add(text.replace("\r\n", "\n").replace("\r", "\n"), page=index + 1)
    finally:
        document.close()
    extracted = builder.build()
    if not extracted.text:
        raise ExtractionError("a PDF with no text layer; OCR is not supported (a scan?)")
    return extracted
