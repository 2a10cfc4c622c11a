"""One page of a PDF as PNG, by poppler's pdftoppm (the station's browser never parses the PDF itself)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class RenderError(Exception):
    """The page cannot be shown (no pdftoppm, or a page it cannot draw)."""


def render_page(pdf: bytes, page: int, dpi: int = 80) -> bytes:
    tool = shutil.which("pdftoppm")  # poppler-utils (the Makefile's set-up installs it)
    if tool is None:
        raise RenderError("pages cannot be shown on this station (poppler-utils is missing)")
    with tempfile.TemporaryDirectory(prefix="signet-kiosk-") as d:
        src = Path(d) / "doc.pdf"
        src.write_bytes(pdf)
        out = Path(d) / "page"
        p = subprocess.run([tool, "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile",  # noqa: S603
                            str(src), str(out)], capture_output=True, timeout=30, check=False)
        png = out.with_suffix(".png")
        if p.returncode != 0 or not png.exists():
            raise RenderError("this page cannot be shown")
        return png.read_bytes()
