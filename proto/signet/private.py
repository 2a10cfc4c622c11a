"""Private directories and files: created 0700/0600, checked without following symlinks, owner and mode read
from the opened descriptor (no window between the check and the use).

The agent's socket directory, state directories and SQLite files go through here, and the ``signet`` client
checks the socket directory the same way before it connects or sends a PIN.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotPrivate(PermissionError):
    """A path that must be ours alone is a symlink, another user's, or open to group/others."""


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        if os.path.islink(path):
            raise NotPrivate(f"{path} is a symbolic link; refusing to use it") from None
        raise NotPrivate(f"{path} cannot be opened as a directory: {e.strerror}") from None


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) and make sure it is a real directory of ours with mode 0700."""
    p = Path(path)
    if not os.path.lexists(p):
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            p.mkdir(mode=0o700)
        except FileExistsError:
            pass  # made concurrently: checked below like any existing one
    fd = _open_dir(p)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise NotPrivate(f"{p} belongs to uid {st.st_uid}, not to this user")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return p


def check_private_dir(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`NotPrivate` unless ``path`` is a real directory of ours that nobody else may enter."""
    p = Path(path)
    fd = _open_dir(p)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_uid != os.getuid():
        raise NotPrivate(f"{p} belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NotPrivate(f"{p} is open to other users (mode {stat.S_IMODE(st.st_mode):o}); it must be 0700")
    return p


def ensure_private_file(path: str | os.PathLike[str]) -> None:
    """An existing regular file of ours, not a symlink, set to mode 0600 (SQLite databases and their WAL)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as e:
        raise NotPrivate(f"{path} cannot be opened safely: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise NotPrivate(f"{path} is not a regular file of this user")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
