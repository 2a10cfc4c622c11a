"""The size of each page of a PDF in points: its media box (inherited through the page tree, as ISO 32000-1 §7.7.3.4
says), normalised so that ``x0 < x1`` and ``y0 < y1``, and its rotation.

The envelope's signature boxes are in the page's user space (points from the bottom left of the media box, what a
signature widget's ``/Rect`` holds), and poppler's ``pdftoppm`` renders the media box by default: a box drawn on the
rendered image converts to points with these numbers (the portal's placement page), and a box sent by anyone is
checked against them (:meth:`server.envelopes.EnvelopeService.update_fields`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from .errors import InvalidDocument
from .failures import reading
from .pdfinput import read_pdf

MAX_PAGES = 10_000  # a page tree larger than this is refused rather than walked
MAX_DEPTH = 64


@dataclass(frozen=True)
class PageBox:
    x0: float
    y0: float
    x1: float
    y1: float
    rotate: int = 0  # 0, 90, 180 or 270: how a viewer turns the page (clockwise)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def holds(self, x1: float, y1: float, x2: float, y2: float) -> bool:
        """Whether the box ``(x1, y1)-(x2, y2)`` lies inside this page (its edges included)."""
        return self.x0 <= x1 and x2 <= self.x1 and self.y0 <= y1 and y2 <= self.y1


def _box(value: Any, name: str) -> tuple[float, float, float, float]:
    numbers = [float(v) for v in value]
    if len(numbers) != 4:
        raise InvalidDocument(f"{name} has a page whose media box is not four numbers")
    x0, y0, x1, y1 = numbers
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def page_boxes(content: bytes, name: str = "the document") -> list[PageBox]:
    """Every page's box, in page order; InvalidDocument when the PDF or its page tree cannot be read."""
    reader = read_pdf(io.BytesIO(content), name)
    out: list[PageBox] = []
    with reading(name):
        # (node, inherited media box, inherited rotation, depth), walked depth first in page order
        stack: list[tuple[Any, Any, int, int]] = [(reader.root["/Pages"], None, 0, 0)]
        visited = 0
        while stack:
            node, media, rotate, depth = stack.pop()
            visited += 1
            if depth > MAX_DEPTH or visited > 2 * MAX_PAGES:  # a cycle in the tree ends here too
                raise InvalidDocument(f"{name} has a page tree that is too deep or too large")
            media = node.get("/MediaBox", media)
            rotate = int(node.get("/Rotate", rotate))
            if "/Kids" in node:
                kids = node["/Kids"]
                stack.extend((kids[i], media, rotate, depth + 1) for i in reversed(range(len(kids))))
                continue
            if media is None:
                raise InvalidDocument(f"{name} has a page without a media box")
            out.append(PageBox(*_box(media, name), rotate=rotate % 360))
            if len(out) > MAX_PAGES:
                raise InvalidDocument(f"{name} has more than {MAX_PAGES} pages")
    if not out:
        raise InvalidDocument(f"{name} has no pages")
    return out
