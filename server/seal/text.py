"""The text of a sealed document, extracted at archival for the contract search index (:mod:`server.search`)."""

from __future__ import annotations

import logging
import shutil
import subprocess

log = logging.getLogger(__name__)

TEXT_LIMIT = 2 * 1024 * 1024  # characters of document text indexed per document
PDFTOTEXT_SECONDS = 60


def document_text(data: bytes, media_type: str) -> str:
    """The text to index of one document: pdftotext of a PDF, the decoded bytes of a text/* file, else ""."""
    if media_type == "application/pdf":
        tool = shutil.which("pdftotext")  # poppler-utils (the Makefile's set-up installs it)
        if tool is None:
            log.warning("pdftotext is not installed: the document's text is not indexed")
            return ""
        try:
            p = subprocess.run([tool, "-enc", "UTF-8", "-", "-"], input=data, capture_output=True,  # noqa: S603 - fixed argv, the PDF on stdin
                               timeout=PDFTOTEXT_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("pdftotext failed (%s): the document's text is not indexed", type(e).__name__)
            return ""
        return p.stdout.decode("utf-8", errors="replace")[:TEXT_LIMIT]
    if media_type.startswith("text/"):
        return data.decode("utf-8", errors="replace")[:TEXT_LIMIT]
    return ""
