"""Conversions between hsm/formats values and signet.v1 messages (generated types stop at the edge)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.x509 import load_der_x509_certificate

from hsm import KeyAlgorithm, KeyInfo, SignScheme, TokenInfo
from signet.v1 import agent_pb2, common_pb2

from .errors import InvalidRequest

_ALGOS = {
    KeyAlgorithm.RSA_2048: common_pb2.KEY_ALGORITHM_RSA_2048,
    KeyAlgorithm.RSA_3072: common_pb2.KEY_ALGORITHM_RSA_3072,
    KeyAlgorithm.RSA_4096: common_pb2.KEY_ALGORITHM_RSA_4096,
    KeyAlgorithm.EC_P256: common_pb2.KEY_ALGORITHM_EC_P256,
    KeyAlgorithm.EC_P384: common_pb2.KEY_ALGORITHM_EC_P384,
}
_ALGOS_BACK: dict[int, KeyAlgorithm] = {v: k for k, v in _ALGOS.items()}
_HASHES: dict[int, str] = {agent_pb2.HASH_ALGORITHM_UNSPECIFIED: "sha256", agent_pb2.HASH_ALGORITHM_SHA256: "sha256",
           agent_pb2.HASH_ALGORITHM_SHA384: "sha384", agent_pb2.HASH_ALGORITHM_SHA512: "sha512"}
_SCHEMES: dict[int, SignScheme | None] = {agent_pb2.SIGNATURE_SCHEME_UNSPECIFIED: None,
            agent_pb2.SIGNATURE_SCHEME_RSA_PKCS1V15: SignScheme.RSA_PKCS1V15,
            agent_pb2.SIGNATURE_SCHEME_RSA_PSS: SignScheme.RSA_PSS,
            agent_pb2.SIGNATURE_SCHEME_ECDSA: SignScheme.ECDSA}


def token_msg(t: TokenInfo) -> common_pb2.Token:
    return common_pb2.Token(
        slot_id=t.slot_id, label=t.label, serial=t.serial, manufacturer=t.manufacturer, model=t.model,
        flags=common_pb2.TokenFlags(
            login_required=t.login_required, initialized=t.initialized, user_pin_initialized=t.user_pin_initialized,
            pin_count_low=t.pin_count_low, pin_final_try=t.pin_final_try, pin_locked=t.pin_locked,
            protected_authentication_path=t.protected_authentication_path, write_protected=t.write_protected,
        ),
    )


def key_msg(k: KeyInfo) -> common_pb2.Key:
    subject = ""
    if k.certificate_der:
        try:
            subject = load_der_x509_certificate(k.certificate_der).subject.rfc4514_string()  # as the API says
        except ValueError:
            subject = "(unreadable certificate)"
    return common_pb2.Key(token_serial=k.token_serial, key_id=k.key_id, label=k.label,
                          algorithm=_ALGOS[k.algorithm], certificate_der=k.certificate_der or b"",
                          certificate_subject=subject, public_key_der=k.public_key_der)


def algorithm(value: int) -> KeyAlgorithm:
    try:
        return _ALGOS_BACK[value]
    except KeyError:
        raise InvalidRequest("choose a key algorithm (rsa-2048, rsa-3072, rsa-4096, p256, p384)") from None


def hash_name(value: int) -> str:
    try:
        return _HASHES[value]
    except KeyError:
        raise InvalidRequest(f"unknown hash algorithm {value}") from None


def scheme(value: int) -> SignScheme | None:
    try:
        return _SCHEMES[value]
    except KeyError:
        raise InvalidRequest(f"unknown signature scheme {value}") from None


def pdf_options(h: agent_pb2.SignPdfHeader) -> dict[str, Any]:
    level = "B-T" if h.level == agent_pb2.PADES_LEVEL_B_T else "B-B"
    if level == "B-T" and not h.timestamp_url:
        raise InvalidRequest("PAdES B-T needs a timestamp_url")
    opts: dict[str, Any] = {
        "field_name": h.field_name or None, "reason": h.reason or None, "location": h.location or None,
        "contact_info": h.contact_info or None, "level": level, "timestamp_url": h.timestamp_url or None,
    }
    if h.form_values:  # filled in the signature's own incremental update (formats.formfields)
        opts["form_values"] = dict(h.form_values)
    if h.HasField("appearance"):
        a = h.appearance
        if not (a.x2 > a.x1 and a.y2 > a.y1):
            raise InvalidRequest("the appearance box needs x2 > x1 and y2 > y1 (PDF points)")
        opts.update(visible=True, page=a.page, box=(int(a.x1), int(a.y1), int(a.x2), int(a.y2)))
    return opts


def verify_msg(report: dict[str, Any]) -> agent_pb2.VerifyResponse:
    """The formats report (``VerificationReport.to_dict()``) as the API's message; the full report as JSON too."""
    sigs = []
    for sig in report.get("signatures", []):
        ts = sig.get("timestamp") or {}
        sigs.append(agent_pb2.SignatureReport(
            field_name=sig.get("field_name") or "", signer_subject=sig.get("signer_subject") or "",
            certificate_chain=list(sig.get("chain") or []), intact=bool(sig.get("intact")),
            trusted=bool(sig.get("trusted")), coverage=sig.get("coverage") or "",
            modification_level=sig.get("modification_level") or "", signing_time=sig.get("signing_time") or "",
            timestamp_time=ts.get("time") or "", valid=bool(sig.get("ok")), problems=list(sig.get("problems") or []),
            docmdp_ok=bool(sig.get("docmdp_ok")), signing_policy=sig.get("signing_policy") or "",
            warnings=list(sig.get("warnings") or []), signature_valid=bool(sig.get("valid")),
            remote_key=bool(sig.get("remote_key")),
        ))
    return agent_pb2.VerifyResponse(valid=bool(report.get("valid")), signatures=sigs,
                                    report_json=json.dumps(report, sort_keys=True, default=str),
                                    document_sha256=report.get("document_sha256") or "",
                                    problems=list(report.get("problems") or []),
                                    warnings=list(report.get("warnings") or []))
