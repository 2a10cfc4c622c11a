"""Key pairs on a token: generation with explicit attributes, listing, public keys."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto.core import OctetString
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from . import objects
from .errors import KeyExists, KeyNotFound, UnsupportedAlgorithm
from .rv import STALE_OBJECT_ERRORS


class KeyAlgorithm(enum.Enum):
    RSA_2048 = ("rsa", 2048)
    RSA_3072 = ("rsa", 3072)
    RSA_4096 = ("rsa", 4096)
    EC_P256 = ("ec", "secp256r1")
    EC_P384 = ("ec", "secp384r1")

    @property
    def is_rsa(self) -> bool:
        return bool(self.value[0] == "rsa")

    @classmethod
    def parse(cls, name: str) -> KeyAlgorithm:
        norm = name.strip().upper().replace("-", "_")
        aliases = {"P256": "EC_P256", "P384": "EC_P384", "EC": "EC_P256", "RSA": "RSA_2048",
                   "RSA2048": "RSA_2048", "RSA3072": "RSA_3072", "RSA4096": "RSA_4096",
                   "SECP256R1": "EC_P256", "SECP384R1": "EC_P384"}
        norm = aliases.get(norm, norm)
        try:
            return cls[norm]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"unknown key algorithm {name!r}; use one of "
                + ", ".join(m.name.lower().replace("_", "-") for m in cls)
            ) from None


_CURVE_BY_OID = {"1.2.840.10045.3.1.7": KeyAlgorithm.EC_P256, "1.3.132.0.34": KeyAlgorithm.EC_P384}


@dataclass(frozen=True)
class KeyInfo:
    token_serial: str
    key_id: str  # CKA_ID, lowercase hex
    label: str
    algorithm: KeyAlgorithm
    public_key_der: bytes  # SubjectPublicKeyInfo
    certificate_der: bytes | None = None


def private_template(key_id: bytes, label: str) -> dict[Attribute, Any]:
    """Every security-relevant attribute set explicitly: tools' defaults differ."""
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        Attribute.SIGN: True,
        Attribute.SIGN_RECOVER: False,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
        Attribute.ID: key_id,
        Attribute.LABEL: label,
    }


def public_template(key_id: bytes, label: str) -> dict[Attribute, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.MODIFIABLE: False,
        Attribute.VERIFY: True,
        Attribute.VERIFY_RECOVER: False,
        Attribute.ENCRYPT: False,
        Attribute.WRAP: False,
        Attribute.DERIVE: False,
        Attribute.ID: key_id,
        Attribute.LABEL: label,
    }


def generate(session: Any, algorithm: KeyAlgorithm, label: str, key_id: bytes | None = None) -> bytes:
    """Generate a key pair on the token; returns its CKA_ID."""
    if not label or len(label) > 64:
        raise ValueError("a key label of 1 to 64 characters is required")
    if find_private(session, label=label, missing_ok=True) is not None:
        raise KeyExists(f"a key labelled {label!r} already exists on this token; choose another label")
    key_id = key_id or os.urandom(16)
    pub_t = public_template(key_id, label)
    priv_t = private_template(key_id, label)
    kind, param = algorithm.value
    if kind == "rsa":
        pub_t[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
        session.generate_keypair(
            KeyType.RSA, param, store=True, label=label, id=key_id,
            public_template=pub_t, private_template=priv_t,
        )
    else:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(param)}, local=True
        )
        params.generate_keypair(
            store=True, label=label, id=key_id, public_template=pub_t, private_template=priv_t
        )
    return key_id


def find_private(
    session: Any, *, key_id: bytes | None = None, label: str | None = None, missing_ok: bool = False
) -> Any:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if key_id is not None:
        attrs[Attribute.ID] = key_id
    if label is not None:
        attrs[Attribute.LABEL] = label
    found = objects.find(session, attrs)  # exhaust: a live search blocks the session
    if not found:
        if missing_ok:
            return None
        what = f"id {key_id.hex()}" if key_id is not None else f"label {label!r}"
        raise KeyNotFound(f"no private key with {what} on this token (list keys to see what is there)")
    return found[0]


def find_public(session: Any, key_id: bytes) -> Any:
    found = objects.find(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
    if not found:
        raise KeyNotFound(f"no public key with id {key_id.hex()} on this token")
    return found[0]


def public_key_info(pub: Any) -> tuple[KeyAlgorithm, bytes]:
    """(algorithm, SubjectPublicKeyInfo DER) of a public key object."""
    key_type = pub[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = pub[Attribute.MODULUS]
        exponent = pub[Attribute.PUBLIC_EXPONENT]
        n = int.from_bytes(modulus, "big")
        bits = n.bit_length()
        algo = {2048: KeyAlgorithm.RSA_2048, 3072: KeyAlgorithm.RSA_3072, 4096: KeyAlgorithm.RSA_4096}.get(bits)
        if algo is None:
            raise UnsupportedAlgorithm(f"RSA key of {bits} bits is not supported")
        spki = asn1_keys.PublicKeyInfo.wrap(
            asn1_keys.RSAPublicKey({"modulus": n, "public_exponent": int.from_bytes(exponent, "big")}), "rsa"
        )
        return algo, spki.dump()
    if key_type == KeyType.EC:
        params = asn1_keys.ECDomainParameters.load(pub[Attribute.EC_PARAMS])
        if params.name != "named":
            raise UnsupportedAlgorithm("only named EC curves are supported")
        oid = params.chosen.dotted
        algo = _CURVE_BY_OID.get(oid)
        if algo is None:
            raise UnsupportedAlgorithm(f"EC curve {oid} is not supported")
        point = pub[Attribute.EC_POINT]
        # CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v2.40);
        # some tokens return the bare point instead
        size = 32 if algo is KeyAlgorithm.EC_P256 else 48
        raw = point if len(point) == 1 + 2 * size else OctetString.load(point).native
        spki = asn1_keys.PublicKeyInfo(
            {
                "algorithm": {"algorithm": "ec", "parameters": params},
                "public_key": raw,
            }
        )
        return algo, spki.dump()
    raise UnsupportedAlgorithm(f"key type {key_type!r} is not supported")


def list_keys(session: Any, token_serial: str) -> list[KeyInfo]:
    from .certs import find_certificate

    out = []
    for priv in objects.find(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
        try:
            key_id = priv[Attribute.ID]
            algo, spki = public_key_info(find_public(session, key_id))
            cert = find_certificate(session, key_id)
            label = priv[Attribute.LABEL]
        except (KeyNotFound, UnsupportedAlgorithm):
            continue
        except STALE_OBJECT_ERRORS:
            continue  # deleted through another session or process while we listed: not there any more
        out.append(KeyInfo(token_serial, key_id.hex(), label, algo, spki, cert))
    return out


def delete(session: Any, key_id: bytes) -> int:
    """Destroy the private key, public key and certificates with this CKA_ID."""
    n = 0
    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY, ObjectClass.CERTIFICATE):
        for obj in objects.find(session, {Attribute.CLASS: cls, Attribute.ID: key_id}):
            obj.destroy()
            n += 1
    if n == 0:
        raise KeyNotFound(f"no key with id {key_id.hex()} on this token")
    return n


__all__ = ["KeyAlgorithm", "KeyInfo", "delete", "find_private", "find_public", "generate", "list_keys",
           "private_template", "public_key_info", "public_template"]
