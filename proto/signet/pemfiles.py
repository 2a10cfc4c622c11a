"""Certificates from files in PEM (one or many blocks) or DER."""

from __future__ import annotations

import os
from pathlib import Path

from asn1crypto import pem


def ders(data: bytes) -> list[bytes]:
    """Every certificate in PEM text (any number of blocks) or the DER bytes themselves."""
    if pem.detect(data):
        return [der for _, _, der in pem.unarmor(data, multiple=True)]
    return [data]


def read_certificates(path: str | os.PathLike[str]) -> list[bytes]:
    """DER certificates from a PEM or DER file (OSError when it cannot be read)."""
    return ders(Path(path).read_bytes())


def to_pem(*certificates: bytes) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", d) for d in certificates)
