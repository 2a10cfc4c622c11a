"""Reports a person or a script can read: every boolean of every signature in to_dict (never omitted, also when
False), the difference-analysis verdict, document-level problems and warnings, and reasons() that never comes
back empty for an invalid document."""

from __future__ import annotations

import json

from formats import PdfSignOptions, sign_pdf, verify_pdf
from formats.report import SignatureReport, VerificationReport

SIGNATURE_KEYS = {"field_name", "kind", "signer_subject", "chain", "ok", "intact", "valid", "trusted", "coverage",
                  "modification_level", "docmdp_ok", "signing_time", "timestamp", "md_algorithm", "signing_policy",
                  "policy_ok", "remote_key", "revocation", "problems", "warnings"}


def test_unsigned_pdf(contract, ca):
    rep = verify_pdf(contract, [ca.root_der])
    d = rep.to_dict()
    assert d["valid"] is False and d["signatures"] == [] and d["warnings"] == []
    assert rep.reasons() == d["reasons"] == ["the document has no signatures"]


def test_false_booleans_are_written(rsa_setup, contract, tmp_path, ca):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions(field_name="Buyer"))
    data = bytearray(out.read_bytes())
    i = data.index(b"Clause 1")
    data[i] = ord("c")  # tampered inside the signed range
    out.write_bytes(bytes(data))
    d = json.loads(json.dumps(verify_pdf(out, [ca.root_der]).to_dict()))  # JSON-ready as it is
    assert d["valid"] is False
    (s,) = d["signatures"]
    assert set(s) == SIGNATURE_KEYS
    assert (s["ok"], s["intact"], s["valid"], s["trusted"]) == (False, False, True, False)
    assert s["modification_level"] == "NONE" and s["docmdp_ok"] is True  # difference analysis: nothing added
    assert d["reasons"] == ["signature 'Buyer': the signed content was modified (digest mismatch)"]


def test_valid_report_has_every_key_and_no_reasons(ec_setup, contract, tmp_path, ca, tsa_url):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, ec_setup.signer, PdfSignOptions(level="B-T", timestamp_url=tsa_url))
    rep = verify_pdf(out, [ca.root_der])
    d = rep.to_dict()
    assert d["valid"] is True and d["reasons"] == [] and d["problems"] == [] and d["warnings"] == []
    (s,) = d["signatures"]
    assert set(s) == SIGNATURE_KEYS
    assert set(s["timestamp"]) == {"time", "tsa_subject", "intact", "valid", "trusted", "ok"}
    assert {r["chain"] for r in s["revocation"]} == {"signer", "tsa"}


def test_unreadable_signature_dictionary_has_a_reason(rsa_setup, contract, tmp_path, ca):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions())
    data = out.read_bytes().replace(b"/SubFilter /ETSI.CAdES.detached", b"/SubFilter /ETSI.CAdES.detachex")
    out.write_bytes(data)
    rep = verify_pdf(out, [ca.root_der])
    assert rep.reasons() == ["signature 'Signature1': unsupported signature format /ETSI.CAdES.detachex"]


def test_reasons_never_empty_when_invalid():
    bare = SignatureReport(field_name=None, kind="cms", signer_subject=None, chain=(), intact=True, valid=True,
                           trusted=True, coverage=None, modification_level=None, docmdp_ok=None, signing_time=None,
                           timestamp=None, md_algorithm=None, problems=())
    assert VerificationReport(None, ()).reasons() == ["the document has no signatures"]
    assert VerificationReport(None, (bare,)).reasons() == []
    assert VerificationReport(None, (bare,), ("bytes nobody signed",)).reasons() == ["bytes nobody signed"]
    warned = VerificationReport(None, (bare,), warnings=("w",))
    assert warned.valid and warned.to_dict()["warnings"] == ["w"]


def test_document_level_warning_for_an_unreadable_dss(rsa_setup, contract, tmp_path, ca):
    import re

    from . import hostile

    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions())
    data = out.read_bytes()
    catalog = re.findall(rb"\n1 0 obj\n(.*?)\nendobj", data, re.S)[-1]
    out.write_bytes(hostile.incremental(data, {  # a DSS whose only OCSP response is not DER
        1: catalog[:-2] + b" /DSS 30 0 R >>", 30: b"<< /OCSPs [31 0 R] >>",
        31: b"<< /Length 7 >>\nstream\ngarbage\nendstream"}))
    rep = verify_pdf(out, [ca.root_der])
    assert rep.valid, rep.reasons()  # a DSS update is allowed after a signature; its data just settles nothing
    assert rep.warnings == ("the document security store (DSS) is unreadable: a structure the parser cannot "
                            "follow (ValueError); its validation data was not used",)
    assert rep.to_dict()["warnings"] == list(rep.warnings) and rep.all_warnings() == list(rep.warnings)
