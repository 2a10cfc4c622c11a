"""Wrapping AES data keys under a token-held key-encryption key (KEK).

CKM_AES_KEY_WRAP_PAD (RFC 5649) on SoftHSM; HSMs differ, so the mechanism is
returned with every wrapped key and must be stored beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from . import objects, rv
from .errors import KeyExists, KeyNotFound, WrapError

CKM_AES_KEY_WRAP_PAD = Mechanism.AES_KEY_WRAP_PAD  # 0x210A
MECHANISMS = {CKM_AES_KEY_WRAP_PAD: "CKM_AES_KEY_WRAP_PAD"}


@dataclass(frozen=True)
class WrappedKey:
    kek_label: str
    mechanism: str
    wrapped: bytes


def generate_kek(session: Any, label: str, bits: int = 256) -> bytes:
    if objects.find(session, {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}):
        raise KeyExists(f"a key-encryption key labelled {label!r} already exists")
    key_id = label.encode("utf-8")[:64]
    session.generate_key(
        KeyType.AES, bits, label=label, id=key_id, store=True,
        template={
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.MODIFIABLE: False,
            Attribute.WRAP: True, Attribute.UNWRAP: True,
            Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
            Attribute.SIGN: False, Attribute.VERIFY: False, Attribute.DERIVE: False,
        },
    )
    return key_id


def _kek(session: Any, label: str) -> Any:
    found = objects.find(session, {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})
    if not found:
        raise KeyNotFound(f"no key-encryption key labelled {label!r} on this token")
    return found[0]


def wrap(session: Any, kek_label: str, data_key: bytes) -> WrappedKey:
    if len(data_key) not in (16, 24, 32):
        raise WrapError("data keys must be 16, 24 or 32 bytes (AES)")
    kek = _kek(session, kek_label)
    tmp = session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
        Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
        Attribute.VALUE: data_key,
    })
    try:
        wrapped = kek.wrap_key(tmp, mechanism=CKM_AES_KEY_WRAP_PAD)
    except rv.GONE_ERRORS:
        raise  # the session pool decides: token removed, or a device error worth a retry
    except pkcs11.PKCS11Error as e:
        raise WrapError(f"wrapping with {kek_label!r} failed: {e!r}") from e
    finally:
        tmp.destroy()
    return WrappedKey(kek_label, MECHANISMS[CKM_AES_KEY_WRAP_PAD], bytes(wrapped))


def unwrap(session: Any, wk: WrappedKey) -> bytes:
    mech = {v: k for k, v in MECHANISMS.items()}.get(wk.mechanism)
    if mech is None:
        raise WrapError(f"unknown wrapping mechanism {wk.mechanism!r}")
    kek = _kek(session, wk.kek_label)
    try:
        key = kek.unwrap_key(
            ObjectClass.SECRET_KEY, KeyType.AES, wk.wrapped, mechanism=mech, store=False,
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.TOKEN: False},
        )
    except pkcs11.GeneralError as e:
        # SoftHSM's answer to a wrong KEK or corrupted data (not WRAPPED_KEY_INVALID): no retry will help
        raise WrapError(f"unwrapping with {wk.kek_label!r} failed (wrong key or corrupted data): {e!r}") from e
    except rv.GONE_ERRORS:
        raise  # the session pool decides: token removed, or a device error worth a retry
    except pkcs11.PKCS11Error as e:
        raise WrapError(f"unwrapping with {wk.kek_label!r} failed (wrong key or corrupted data): {e!r}") from e
    try:
        return bytes(key[Attribute.VALUE])
    finally:
        key.destroy()
