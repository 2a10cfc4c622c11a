"""Where the `signet` CLI keeps unlock grant handles between commands (like ssh-agent's socket variable).

``signet unlock`` stores the handle the agent returned in ``$SIGNET_GRANT_DIR`` (default
``$XDG_RUNTIME_DIR/signet/grants``), one 0600 file per token (by the label or serial it was selected with, and
by serial), in a private 0700 directory; ``signet sign`` presents it.  The runtime directory is per-user and
cleared at logout; the handle is worth nothing once the grant is used up, expired, locked or its token removed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from signet.durable import write_atomic
from signet.private import check_private_dir, ensure_private_dir

ENV = "SIGNET_GRANT_DIR"


def grant_dir() -> Path | None:
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "signet" / "grants" if runtime and Path(runtime).is_dir() else None


def _name(kind: str, value: str) -> str:
    return f"{kind}-{re.sub(r'[^A-Za-z0-9._-]', '_', value)[:64]}.grant"


class GrantFiles:
    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory if directory is not None else grant_dir()

    def save(self, handle: str, *, serial: str, label: str = "") -> Path | None:
        if self.dir is None:
            return None
        ensure_private_dir(self.dir)
        path = self.dir / _name("serial", serial)
        write_atomic(path, handle.encode("ascii") + b"\n", 0o600)
        if label:
            write_atomic(self.dir / _name("label", label), handle.encode("ascii") + b"\n", 0o600)
        return path

    def load(self, *, serial: str = "", label: str = "") -> str | None:
        if self.dir is None or not self.dir.is_dir():
            return None
        check_private_dir(self.dir)
        path = self.dir / (_name("serial", serial) if serial else _name("label", label))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "r", encoding="ascii") as f:
            return f.read().strip() or None

    def forget(self, *, serial: str = "", label: str = "") -> None:
        if self.dir is None:
            return
        for kind, value in (("serial", serial), ("label", label)):
            if value:
                (self.dir / _name(kind, value)).unlink(missing_ok=True)
