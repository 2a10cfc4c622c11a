"""The `signet` CLI's own refusals, apart from the command modules so that each of those loads only when used."""

from __future__ import annotations


class Usage(Exception):
    """A command line that cannot be carried out as given (exit 2)."""


class BadInput(Exception):
    """A file that cannot be used (missing, empty, not what its name says) (exit 9)."""


__all__ = ["BadInput", "Usage"]
