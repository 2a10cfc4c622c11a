"""Secrets (PINs, one-time codes, passwords) from a file, an environment variable or a prompt -- never argv.

Command-line arguments are visible to every user in the process list, so no Signet command takes a secret
as an argument.  A secret file must not be readable by group or others.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from pathlib import Path


class SecretUnavailable(ValueError):
    """The named source holds no secret (unset variable, unreadable or too open file)."""


def read_file_secret(path: str | os.PathLike[str], what: str = "secret") -> str:
    """The first line of a file that only its owner can read."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise SecretUnavailable(f"the {what} file {p} cannot be read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretUnavailable(f"the {what} file {p} is not a regular file")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretUnavailable(f"the {what} file {p} is readable by others: chmod 600 it")
        with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as f:
            text = f.read()
    finally:
        os.close(fd)
    return text.splitlines()[0] if text else ""


def read_env_secret(name: str, what: str = "secret") -> str:
    value = os.environ.get(name)
    if value is None:
        raise SecretUnavailable(f"the {what} variable {name} is not set")
    return value


def read_secret(from_file: str | os.PathLike[str] | None = None, from_env: str | None = None, *,
                prompt: str | None = None, what: str = "secret") -> str | None:
    """A secret from ``from_file`` (first line), else ``from_env``, else a terminal prompt; None when none.

    The prompt is used only when ``prompt`` is given and stdin is a terminal.
    """
    if from_file:
        return read_file_secret(from_file, what)
    if from_env:
        return read_env_secret(from_env, what)
    if prompt is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    return None
