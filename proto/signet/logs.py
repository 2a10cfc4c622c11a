"""One log format for every Signet process and the libraries it uses: one line per event.

Third-party libraries (pyHanko, pyhanko-certvalidator, aiohttp, grpc) log through the same handler; an
exception attached to a record becomes `` [ExcType: message]`` on the same line instead of a multi-line
traceback, unless the level is DEBUG (then the traceback is kept, for developers).  Messages are ours or the
libraries'; Signet never logs PINs, codes, keys or document contents.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    def __init__(self, keep_tracebacks: bool) -> None:
        super().__init__(FORMAT)
        self.keep_tracebacks = keep_tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.keep_tracebacks or not record.exc_info:
            text = super().format(record)
        else:
            exc = record.exc_info[1]
            saved = record.exc_info, record.exc_text
            record.exc_info, record.exc_text = None, None
            try:
                text = super().format(record)
            finally:
                record.exc_info, record.exc_text = saved
            if exc is not None:
                text += f" [{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}]"
        return text.replace("\n", " | ")


def setup(level: str | int = "INFO", *, quiet_libraries: bool = True) -> None:
    """Configure the root logger once for this process (stderr, one line per event)."""
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(keep_tracebacks=numeric <= logging.DEBUG))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(numeric)
    if quiet_libraries and numeric > logging.DEBUG:
        # their INFO/WARNING chatter (e.g. pyHanko on every untrusted signature) is a verdict in our reports
        for name in ("pyhanko", "pyhanko_certvalidator", "aiohttp", "asyncio"):
            logging.getLogger(name).setLevel(logging.ERROR)
