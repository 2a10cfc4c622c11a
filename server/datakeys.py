"""The server's two data secrets: the HMAC key (one-time codes, document hashes) and the field-encryption key.

``source = "hsm"`` (the default): both are random 32-byte keys wrapped by the archive key-encryption
key on the server token (RFC 5649 on SoftHSM) and kept as small JSON files (mode 0600) in
``<state_dir>/keys``; the running server unwraps them once at start.  A copy of the state directory
without the HSM is useless.  ``source = "file"``: raw key files managed by the operator (mode 0600,
checked at load), for deployments whose HSM cannot unwrap.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hsm.wrap import WrappedKey

from .config import ConfigError, SecretsSource, ServerConfig
from .keys import ARCHIVE_KEK_LABEL
from .sealing import AesGcmBox
from .tls import write_file

if TYPE_CHECKING:
    from hsm import Token

NAMES = ("hmac", "box")


@dataclass(frozen=True)
class DataKeys:
    hmac_key: bytes = field(repr=False)
    box: AesGcmBox


def _path(cfg: ServerConfig, name: str) -> Path:
    return cfg.keys_dir / f"{name}.wrapped.json"


def ensure_data_keys(cfg: ServerConfig, token: Token) -> tuple[list[str], list[str]]:
    """Create the wrapped data keys that are missing; returns (created, existing) file names."""
    created: list[str] = []
    existing: list[str] = []
    if cfg.secrets.source is not SecretsSource.HSM:
        return created, [str(cfg.secrets.hmac_key_file), str(cfg.secrets.box_key_file)]
    for name in NAMES:
        path = _path(cfg, name)
        if path.exists():
            existing.append(path.name)
            continue
        wrapped = token.wrap_key(ARCHIVE_KEK_LABEL, os.urandom(32))
        doc = {"version": 1, "kek_label": wrapped.kek_label, "mechanism": wrapped.mechanism,
               "wrapped": base64.b64encode(wrapped.wrapped).decode("ascii")}
        write_file(path, json.dumps(doc).encode(), 0o600)
        created.append(path.name)
    return created, existing


def _raw(path: Path, what: str) -> bytes:
    st = path.stat()
    if st.st_mode & 0o077:
        raise ConfigError(str(path), [f"the {what} file is readable by others: chmod 600 it"])
    return path.read_bytes()


def load_data_keys(cfg: ServerConfig, token: Token) -> DataKeys:
    """Unwrap (or read) both keys; raises ConfigError with the missing file named."""
    if cfg.secrets.source is SecretsSource.FILE:
        hmac_file, box_file = cfg.secrets.hmac_key_file, cfg.secrets.box_key_file
        if hmac_file is None or box_file is None:  # checked at load already
            raise ConfigError(str(cfg.path), ["secrets.hmac_key_file and secrets.box_key_file are required"])
        hmac_key, box_key = _raw(hmac_file, "HMAC key"), _raw(box_file, "box key")
        if len(hmac_key) < 32 or len(box_key) != 32:
            raise ConfigError(str(cfg.path), ["the HMAC key file needs at least 32 bytes and the box key file "
                                              "exactly 32"])
        return DataKeys(hmac_key, AesGcmBox(box_key, "file-1"))
    keys: dict[str, bytes] = {}
    for name in NAMES:
        path = _path(cfg, name)
        if not path.exists():
            raise ConfigError(str(cfg.path), [f"the wrapped {name} key {path} is missing; run `signet-server init`"])
        doc = json.loads(_raw(path, f"wrapped {name} key"))
        keys[name] = token.unwrap_key(WrappedKey(doc["kek_label"], doc["mechanism"], base64.b64decode(doc["wrapped"])))
    return DataKeys(keys["hmac"], AesGcmBox(keys["box"], "hsm-1"))
