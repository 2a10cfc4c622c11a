"""Minimal reproductions of what the fuzzers found in product code, kept as regression tests once fixed.

Each test states the contract the finding broke.  A new finding gets its test here marked
``xfail(strict=True)`` and its signature in :data:`tests.fuzz.known.KNOWN` (the targets tolerate it meanwhile);
when the fix lands the test passes, the strict xfail fails the suite: remove the marker and the entry.

Found and fixed: F1 (a name split by the pre-scan's read boundary escaped the length limit), F5 (stray closing
brackets cancelled later nesting), F2 (cryptography's InvalidVersion escaped check_csr: Enroll ended INTERNAL),
F3 (a certificate asn1crypto reads lazily failed inside path validation: INTERNAL), F4 (a malformed CertID
echoed into a signed answer), F6 (asn1crypto's AttributeError/IndexError escaped the OCSP responder), F10 (a
CertID naming a signature algorithm made the signed answer unreadable), F7 (the TSA answered systemFailure to
an unreadable request), F8 (a deeply nested worker frame header raised RecursionError), F9 (a key cryptography
cannot load escaped formats.verify_pdf: VerifyPdf ended INTERNAL), F11 (the pre-scan cut a name 32 bytes
before a read's end when a short token followed it: an overlong name passed by up to 31 bytes), F12 (a run
of "<" split by a read changed its parity: dictionaries only, instead of dictionaries and a hex
string), F13 (the plain text kept for a next read was not measured when that read found the end of the file),
F14 (a read that ended inside ">>" lost a closing bracket), F15 (a run glued to "endstream" was never measured),
F16 (a certificate name asn1crypto reads as bytes escaped verify_detached: SubmitSignature ended INTERNAL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from formats import prescan as ps
from formats.errors import InvalidDocument

from . import known, worlds
from .fakes import Aborted, FakeContext

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


# -- F1: formats.prescan lets an over-long token through when it straddles a read boundary -----------------------------
def _long_token_document() -> bytes:
    """A ~2 MiB PDF whose name /Nxxx...endobjyyy... is ~1 MiB long (the limit is 64 KiB): the fake keyword
    "endobj" ends 20 bytes before the first 1 MiB read ends."""
    filler = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    while len(filler) < MiB - 64 * 1024:
        filler += b"% " + b"c" * 1000 + b"\n"
    name = b"/N" + b"x" * (MiB - len(filler) - 20 - 2) + b"endobj" + b"y" * 900_000
    return filler + name + b"\n2 0 obj\n<< >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def test_prescan_refuses_the_long_token_when_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: read in one piece, the same document is refused."""
    monkeypatch.setattr(ps, "_CHUNK", 4 * MiB)
    with pytest.raises(InvalidDocument, match="longer than 65536 bytes"):
        ps.check_bytes(_long_token_document())


def test_prescan_long_token_across_a_chunk_boundary() -> None:
    with pytest.raises(InvalidDocument, match="longer than 65536 bytes"):
        ps.check_bytes(_long_token_document())


# -- F11: formats.prescan splits a name at 32 bytes before a read's end when a short token follows it -----------------
def _name_ending_at_a_read_boundary() -> bytes:
    """A 65,550-byte name (the limit is 65,536) ending 3 bytes before the first 1 MiB read ends, then " 12": the
    scanner keeps the last 32 bytes for the next read and counts only the 65,521 bytes of the name before them;
    the rest, in the next segment, follows a regular byte and is never measured."""
    filler = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    while len(filler) < MiB - 2 * 65536:
        filler += b"% " + b"c" * 1000 + b"\n"
    run = 65_550
    filler += b" " * (MiB - 3 - run - 1 - len(filler))
    return filler + b"/" + b"N" * run + b" 12 0 obj\n<< >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def test_prescan_refuses_the_name_before_the_boundary_when_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: read in one piece, the same document is refused."""
    monkeypatch.setattr(ps, "_CHUNK", 4 * MiB)
    with pytest.raises(InvalidDocument, match="longer than 65536 bytes"):
        ps.check_bytes(_name_ending_at_a_read_boundary())


def test_prescan_name_cut_by_the_kept_tail() -> None:
    with pytest.raises(InvalidDocument, match="longer than 65536 bytes"):
        ps.check_bytes(_name_ending_at_a_read_boundary())


# -- F5: formats.prescan counts nesting so that closing brackets coming first cancel later opening ones ---------------
def test_prescan_counts_nesting_after_stray_closing_brackets() -> None:
    doc = (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + b"]" * 200 + b"\n2 0 obj\n" + b"[" * 200 + b" () "
           + b"[" * 100 + b"\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
    with pytest.raises(InvalidDocument, match="nested deeper than 256 levels"):
        ps.check_bytes(doc)


def test_prescan_refuses_the_nesting_without_the_stray_brackets() -> None:
    """The control: the same 300 levels without the junk before them are refused."""
    doc = b"%PDF-1.7\n2 0 obj\n" + b"[" * 200 + b" () " + b"[" * 100 + b"\nendobj\n"
    with pytest.raises(InvalidDocument, match="nested deeper than 256 levels"):
        ps.check_bytes(doc)


# -- F12: formats.prescan: a run of "<" split by a read changed its parity ---------------------------------------------
def test_prescan_reads_a_run_of_angle_brackets_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """71 "<" are 35 dictionaries and a hex string that runs to the end (accepted, read whole); a read ending
    inside the run used to split it into two even runs (dictionaries only), and the 300 "[" after it were
    counted as nesting: refused.  Every read size must give the whole read's verdict."""
    prefix = b"%PDF-1.7\n1 0 obj\n"
    doc = prefix + b"<" * 71 + b"[" * 300 + b"\n"
    ps.check_bytes(doc)  # read whole: accepted
    for cut in (10, 40, 41, 70):
        monkeypatch.setattr(ps, "_CHUNK", len(prefix) + cut)
        ps.check_bytes(doc)


# -- F13: formats.prescan: the plain text kept for a next read was never measured at the end of the file -------------
def test_prescan_measures_the_text_kept_at_the_end_of_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20-byte run ("startxrstream..." is no keyword) with 16 bytes allowed, near the end of the file: read whole
    it is refused; when the last read only kept it for a next read that found the end of the file, it passed."""
    limits = ps.Limits(max_token=16)
    doc = b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n" + b"startxrstream2142abc" + b" 0 R >>\ntrailer\n<"
    for chunk in (len(doc), len(doc) - 2, 48, 40):
        monkeypatch.setattr(ps, "_CHUNK", chunk)
        with pytest.raises(InvalidDocument, match="longer than 16 bytes"):
            ps.check_bytes(doc, limits=limits)


# -- F14: formats.prescan: a read that ended between the two ">" of ">>" lost a closing bracket ----------------------
def test_prescan_never_splits_a_closing_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five dictionaries opened and closed, ten times over, 6 levels allowed: accepted read whole; a read that
    ended inside ">>" counted neither half, and the lost closings added up to "nested deeper than 6 levels".
    Every read size must give the whole read's verdict."""
    limits = ps.Limits(max_depth=6)
    doc = b"%PDF-1.7\n1 0 obj\n" + (b"<< /A " * 5 + b">>" * 5 + b"\n") * 10 + b"endobj\n"
    ps.check_bytes(doc, limits=limits)
    for chunk in range(100, len(doc)):
        monkeypatch.setattr(ps, "_CHUNK", chunk)
        ps.check_bytes(doc, limits=limits)


# -- F15: formats.prescan: a run glued to "endstream" was never measured -------------------------------------------
def test_prescan_measures_a_run_glued_to_endstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream data ends at "endstream"; 40 regular bytes right after it (16 allowed) followed no delimiter, so
    the search for an overlong run never started there: accepted read whole, refused when a read split it."""
    limits = ps.Limits(max_token=16)
    doc = (b"%PDF-1.7\n1 0 obj\n<< /Length 4 >>\nstream\nDATA\nendstream" + b"A1" * 20
           + b"\nendobj\ntrailer\n<< >>\n")
    for chunk in (len(doc) + 1, 90, 100):
        monkeypatch.setattr(ps, "_CHUNK", chunk)
        with pytest.raises(InvalidDocument, match="longer than 16 bytes"):
            ps.check_bytes(doc, limits=limits)


# -- F2: check_csr lets cryptography's InvalidVersion escape ---------------------------------------------------------
def _bad_version_csr() -> bytes:
    der = worlds.new_csr()
    i = der.index(b"\x02\x01\x00")  # CertificationRequestInfo.version, the first INTEGER
    return der[:i] + b"\x02\x01\x02" + der[i + 3:]


def test_check_csr_refuses_a_bad_version_with_invalid_request() -> None:
    from server.ca.csr import check_csr
    from server.ca.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        check_csr(_bad_version_csr())


# -- server edge: the same inputs end in INTERNAL ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(make_token: Any, tmp_path_factory: pytest.TempPathFactory) -> worlds.ServerWorld:
    return worlds.build_server_world(make_token("fzfind").serial, tmp_path_factory.mktemp("fuzz-findings"))


def _status(call: Any, request: Any) -> grpc.StatusCode:
    try:
        call(request, FakeContext(peer="ipv4:127.0.0.1:50000"))
    except Aborted as e:
        return e.code
    return grpc.StatusCode.OK


@pytest.mark.hsm
def test_enroll_refuses_a_bad_version_csr_with_invalid_argument(server: worlds.ServerWorld) -> None:
    from signet.v1 import server_pb2 as pb

    server.refresh()
    request = pb.EnrollRequest(person_id=server.resolve(worlds.PERSON_APPROVED),
                               one_time_code=server.resolve(worlds.ENROLL_CODE),
                               code_id=server.resolve(worlds.ENROLL_CODE_ID), csr_der=_bad_version_csr())
    assert _status(server.enrollment_servicer.Enroll, request) == grpc.StatusCode.INVALID_ARGUMENT


# -- F3: register_external: a certificate asn1crypto reads only lazily fails inside path validation -------------------
def _damaged_external_certificate() -> bytes:
    """The committed seed's external certificate with one digit of its GeneralizedTime notAfter made '!'."""
    from signet.v1 import server_pb2 as pb

    seed = (HERE / "corpus" / "server_handler" / "RegisterExternalCertificate.bin").read_bytes()
    der = pb.RegisterExternalCertificateRequest.FromString(seed[1:]).certificate_der
    i = der.index(b"\x18\x0f")  # GeneralizedTime, 15 characters
    return der[:i + 3] + b"!" + der[i + 4:]


@pytest.mark.hsm
def test_register_external_refuses_a_damaged_certificate(server: worlds.ServerWorld) -> None:
    from signet.v1 import server_pb2 as pb

    server.refresh()
    request = pb.RegisterExternalCertificateRequest(person_id=server.resolve(worlds.PERSON_APPROVED),
                                                    certificate_der=_damaged_external_certificate())
    assert _status(server.certificate_servicer.RegisterExternalCertificate, request) == \
        grpc.StatusCode.INVALID_ARGUMENT


# -- OCSP: a CertID is echoed into a signed answer, so all of it must be DER -------------------------------------------
def _request_with_malformed_cert_id(server: worlds.ServerWorld) -> bytes:
    """Two CertIDs: one for our issuer (well-formed), one naming an unknown hash algorithm whose issuerNameHash is
    tagged 0x14 instead of OCTET STRING: not a valid OCSPRequest (cryptography refuses it)."""
    from asn1crypto import ocsp

    def cert_id(algorithm: str, name_hash: bytes, key_hash: bytes) -> dict[str, Any]:
        return {"hash_algorithm": {"algorithm": algorithm}, "issuer_name_hash": name_hash,
                "issuer_key_hash": key_hash, "serial_number": 0x4000_1234}

    der = bytes(ocsp.OCSPRequest({"tbs_request": {"request_list": [
        {"req_cert": cert_id("sha1", b"\xaa" * 20, b"\xbb" * 20)},
        {"req_cert": cert_id("1.2.3.4", b"\x77" * 20, b"\x66" * 20)}]}}).dump())
    for marker, value in server.ocsp_placeholders():
        der = der.replace(marker, value)
    return der.replace(b"\x04\x14" + b"\x77" * 20, b"\x14\x14" + b"\x77" * 20)


@pytest.mark.hsm
def test_ocsp_refuses_a_malformed_cert_id(server: worlds.ServerWorld) -> None:
    """Found (F4) against an intermediate state of the uncommitted server/ca/ocsp.py rewrite, which read only the
    fields it needed and echoed the rest into a signed 'successful' answer that cryptography/OpenSSL cannot
    parse; the rewrite's current state (_examine reads every field) answers malformedRequest.  Kept as a
    regression test."""
    from asn1crypto import ocsp
    from cryptography.x509 import ocsp as cocsp

    request = _request_with_malformed_cert_id(server)
    with pytest.raises(ValueError, match="issuer_name_hash"):
        cocsp.load_der_ocsp_request(request)  # the control: this is not an OCSPRequest
    answer = server.ocsp.respond(request)
    assert ocsp.OCSPResponse.load(answer)["response_status"].native == "malformed_request"


# -- F6: asn1crypto's AttributeError escapes OcspResponder.respond() ---------------------------------------------------
def _request_with_context_tagged_parameters() -> bytes:
    """One CertID whose hash algorithm (SHA-512/224, which asn1crypto does not know) has parameters [9] 0x00
    instead of NULL: asn1crypto reads them as a REAL, and its Real has no ``native``."""
    from asn1crypto import algos, core, ocsp

    alg = algos.DigestAlgorithm({"algorithm": "2.16.840.1.101.3.4.2.5", "parameters": core.Null()})
    der = bytes(ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
        "hash_algorithm": alg, "issuer_name_hash": b"\xaa" * 32, "issuer_key_hash": b"\xbb" * 32,
        "serial_number": 5}}]}}).dump())
    return der.replace(bytes.fromhex("06096086480165030402050500"), bytes.fromhex("06096086480165030402058900"))


@pytest.mark.hsm
def test_ocsp_answers_an_unreadable_algorithm_parameter(server: worlds.ServerWorld) -> None:
    from asn1crypto import ocsp

    answer = server.ocsp.respond(_request_with_context_tagged_parameters())
    assert ocsp.OCSPResponse.load(answer)["response_status"].native == "malformed_request"


# -- F10: an OCSP answer echoes a CertID that strict clients cannot read --------------------------------------------
def _request_naming_a_signature_algorithm(server: worlds.ServerWorld) -> bytes:
    """A CertID of ours, and one whose hashAlgorithm is dsa-with-sha224 (2.16.840.1.101.3.4.3.1, a signature
    algorithm) with NULL parameters, which that algorithm forbids (RFC 5758 3.1)."""
    from asn1crypto import algos, core, ocsp

    def cert_id(alg: algos.DigestAlgorithm, size: int, marker: bytes) -> dict[str, Any]:
        return {"hash_algorithm": alg, "issuer_name_hash": marker * size, "issuer_key_hash": b"\xbb" * size,
                "serial_number": 0x4000_1234}

    der = bytes(ocsp.OCSPRequest({"tbs_request": {"request_list": [
        {"req_cert": cert_id(algos.DigestAlgorithm({"algorithm": "sha1"}), 20, b"\xaa")},
        {"req_cert": cert_id(algos.DigestAlgorithm({"algorithm": "2.16.840.1.101.3.4.3.1",
                                                    "parameters": core.Null()}), 28, b"\x77")}]}}).dump())
    for marker, value in server.ocsp_placeholders():
        der = der.replace(marker, value)
    return der


@pytest.mark.hsm
def test_ocsp_answer_to_a_non_digest_hash_algorithm_is_readable(server: worlds.ServerWorld) -> None:
    from asn1crypto import ocsp
    from cryptography.x509 import ocsp as cocsp

    answer = server.ocsp.respond(_request_naming_a_signature_algorithm(server))
    if ocsp.OCSPResponse.load(answer)["response_status"].native == "successful":
        cocsp.load_der_ocsp_response(answer)  # a signed answer must be readable by every client
    else:
        assert ocsp.OCSPResponse.load(answer)["response_status"].native == "malformed_request"


# -- F7: the TSA answers systemFailure (and logs a stack trace) for a request it cannot read --------------------------
def _request_with_unreadable_extension() -> bytes:
    """A SHA-256 TimeStampReq whose extensions hold one Extension followed by [APPLICATION 3] with no content,
    which asn1crypto reads as an empty BIT STRING (IndexError on ``.native``)."""
    import hashlib

    from asn1crypto import tsp

    der = bytes(tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"contract").digest()}}).dump())
    body = der[2:] + bytes.fromhex("a00b30090603551d1304004300")  # the short form: the request is < 128 bytes
    return bytes([0x30, len(body)]) + body


@pytest.mark.hsm
def test_tsa_rejects_unreadable_extensions_as_bad_data(server: worlds.ServerWorld) -> None:
    from asn1crypto import core, tsp

    answer = core.Sequence.load(server.tsa.respond(_request_with_unreadable_extension()))
    status = tsp.PKIStatusInfo.load(answer[0].dump()).native
    assert status["status"] == "rejection"
    assert "bad_data_format" in status["fail_info"]


# -- F8: agent.jobs.decode raises RecursionError for a deeply nested header ------------------------------------------
def test_frame_with_deeply_nested_header_is_a_frame_error() -> None:
    from agent.jobs import FrameError, decode

    header = b'{"kind":"ok","fields":' + b"[" * 5000 + b"]" * 5000 + b',"blobs":[]}'
    with pytest.raises(FrameError):
        decode(len(header).to_bytes(4, "big") + header)


# -- F9: a public key cryptography cannot load escapes formats.verify_pdf ----------------------------------------------
def test_verify_pdf_of_a_signer_key_of_unknown_type_is_a_report() -> None:
    from formats.verify import verify_pdf_bytes

    pdf = (HERE / "regressions" / "F9-signer-key-of-unknown-type.pdf").read_bytes()
    try:
        report = verify_pdf_bytes(pdf, [(HERE / "fixtures" / "root.der").read_bytes()], revocation="offline")
    except InvalidDocument:
        return
    assert not report.valid


def test_verify_pdf_with_an_unusable_trust_root_is_no_internal_error() -> None:
    from formats.errors import InvalidOptions
    from formats.verify import verify_pdf_bytes

    root = (HERE / "fixtures" / "root.der").read_bytes()
    # id-ecPublicKey 1.2.840.10045.2.1 -> 1.2.840.10045.10.1, a key type nobody knows
    unusable = root.replace(bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0a01"))
    signed = (HERE / "corpus" / "pdf_verify" / "signed.pdf").read_bytes()
    try:
        report = verify_pdf_bytes(signed, [unusable], revocation="offline")
    except InvalidOptions:
        return
    assert not report.valid


# -- F16: a certificate name asn1crypto reads as bytes escaped formats.verify_detached (SubmitSignature INTERNAL) ---
def test_verify_detached_with_a_certificate_name_of_bytes_is_a_report() -> None:
    """A detached CMS (the server_handler fuzzer's SubmitSignature content) whose certificate has a name value that
    asn1crypto's string preparation cannot take: building the validation context raised TypeError outside the
    verdict's try, so the envelope service answered INTERNAL instead of refusing the signature."""
    import io

    from formats import verify_detached

    sig = (HERE / "regressions" / "F16-certificate-name-with-a-bytes-value.p7s").read_bytes()
    try:
        report = verify_detached(io.BytesIO(b"the terms\n"), sig, [(HERE / "fixtures" / "external-root.der")
                                                                  .read_bytes()], revocation="offline")
    except InvalidDocument:
        return
    assert not report.valid


def test_every_known_finding_has_its_reproduction() -> None:
    names = {n for n in globals() if n.startswith("test_")}
    assert set(known.KNOWN.values()) <= names


def test_a_revision_whose_cms_carries_a_changed_unsigned_certificate_is_ours_still() -> None:
    """F17 (fuzz run of 2026-11-30): three hex digits permuted inside our signature's /Contents, in a
    certificate the CMS carries unsigned: the signed bytes are ours, the verifier ignores a certificate that no
    longer chains, and the revision is accepted -- which the target's contract now allows (only that span)."""
    from formats.revision import check_pdf_revision

    from .targets import _pdf_roots, _revision_bases, revision

    data = (HERE / "regressions" / "F17-revision-with-a-changed-embedded-certificate.bin").read_bytes()
    contract, signed = _revision_bases()
    new = contract + data[1:]
    assert new != signed and len(new) == len(signed)
    assert check_pdf_revision(contract, new, trust_roots=_pdf_roots(), revocation="offline").accepted
    revision(data)  # no Finding: the difference lies inside the signature value
    mangled = bytearray(new)
    mangled[signed.index(b"/ByteRange") + 12] ^= 1  # outside /Contents: refused
    assert not check_pdf_revision(contract, bytes(mangled), trust_roots=_pdf_roots(), revocation="offline").accepted


@pytest.fixture(scope="module")
def portal(server: worlds.ServerWorld) -> Any:
    from .portal_target import make_portal

    return make_portal(server)


@pytest.mark.hsm
def test_a_malformed_cookie_header_is_no_session_not_a_500(portal: Any) -> None:
    """F18 (fuzz run of 2026-11-30): a Cookie header SimpleCookie refuses ("Illegal key") made the portal answer 500;
    now it is no session: the form is refused (403), nothing changes."""
    from .portal_target import request

    request(portal, (HERE / "regressions" / "F18-portal-cookie-with-an-illegal-key.http").read_bytes())  # no 500
    assert portal[2].last_response.startswith(b"HTTP/1.1 403 ")


@pytest.mark.hsm
def test_a_request_line_that_does_not_parse_gets_a_400_not_an_escaping_exception(portal: Any) -> None:
    """F19 (fuzz run of 2026-11-30): the portal's log line read ``self.path`` before a bad request line had set it,
    so the exception escaped the handler (no answer, a traceback); now the client gets a 400 with a status line."""
    from .portal_target import request

    request(portal, (HERE / "regressions" / "F19-portal-request-line-that-does-not-parse.http").read_bytes())
    assert portal[2].last_response.startswith(b"HTTP/1.1 400 ")


@pytest.mark.hsm
def test_a_csrf_field_with_non_ascii_characters_is_refused_not_a_500(portal: Any) -> None:
    """F20 (fuzz run of 2026-11-30): hmac.compare_digest raises TypeError for str with non-ASCII characters, so such
    a csrf field made the portal answer 500; the tokens are compared as bytes now: 403, nothing changes."""
    from .portal_target import request

    data = (HERE / "regressions" / "F20-portal-csrf-with-non-ascii.http").read_bytes()
    request(portal, data)
    assert portal[2].last_response.startswith(b"HTTP/1.1 4")


def test_the_bridge_answers_a_request_line_without_a_version_with_a_status_line() -> None:
    """F21 (fuzz run of 2026-11-30, the bridge's first): ``GET /1`` without a version was taken for HTTP/0.9 and
    answered with a bare page, no status line; the bridge answers it as HTTP/1.1 now (a 404, nothing signed)."""
    from .bridge_target import make_bridge, request

    bridge = make_bridge()
    request(bridge, (HERE / "regressions" / "F21-bridge-request-line-without-a-version.http").read_bytes())
    assert bridge[0].last_response.startswith(b"HTTP/1.1 404 ") and bridge[0].performed == []


def test_the_bridge_seeds_reach_the_signing_step_only_from_the_allowed_origin() -> None:
    """The committed seeds through the bridge's handler: only the well-formed request from the allowed origin to
    the loopback Host reaches the signing step, once; every other is refused with its status."""
    from .bridge_target import make_bridge, request

    bridge = make_bridge()
    corpus = HERE / "corpus" / "bridge_request"
    answers = {}
    for seed in sorted(corpus.iterdir()):
        request(bridge, seed.read_bytes())
        answers[seed.name] = bridge[0].last_response.split(b" ", 2)[1].decode()
    assert answers == {"get-root": "404", "post-other": "404", "post-sign": "303", "post-sign-bad-return": "400",
                       "post-sign-evil-origin": "403", "post-sign-json": "415", "post-sign-no-origin": "403",
                       "post-sign-rebound-host": "403"}
    assert len(bridge[0].performed) == 1
    request(bridge, (corpus / "post-sign").read_bytes())  # the same nonce again: refused
    assert bridge[0].last_response.startswith(b"HTTP/1.1 409 ") and len(bridge[0].performed) == 1


def test_a_return_address_urlsplit_refuses_is_a_400_not_a_500() -> None:
    """F22 (fuzz run of 2026-11-30): a return address with an unbalanced "[" made urlsplit raise ValueError
    ("Invalid IPv6 URL") and the bridge answer 500; it is a 400 now, nothing signed."""
    from .bridge_target import make_bridge, request

    bridge = make_bridge()
    request(bridge, (HERE / "regressions" / "F22-bridge-return-address-with-an-unbalanced-bracket.http").read_bytes())
    assert bridge[0].last_response.startswith(b"HTTP/1.1 400 ") and bridge[0].performed == []


def test_an_http_0_9_request_line_is_answered_with_a_status_line_by_the_bridge() -> None:
    """F23 (fuzz run of 2026-11-30): ``POST x HTTP/0.9`` was answered in HTTP/0.9's way, a bare page without a status
    line or headers (so without the Content-Security-Policy); every small listener answers HTTP/1.1 now
    (signet.http11)."""
    from .bridge_target import make_bridge, request

    bridge = make_bridge()
    request(bridge, (HERE / "regressions" / "F23-bridge-http-0.9.http").read_bytes())
    assert bridge[0].last_response.startswith(b"HTTP/1.1 404 ") and b"Content-Security-Policy" in \
        bridge[0].last_response


@pytest.mark.hsm
def test_an_http_0_9_request_line_is_answered_with_a_status_line_by_the_portal(portal: Any) -> None:
    """F23, the portal: the same request for its stylesheet got the bare stylesheet; now a status line and headers."""
    from .portal_target import request

    request(portal, (HERE / "regressions" / "F23-portal-http-0.9.http").read_bytes())
    assert portal[2].last_response.startswith(b"HTTP/1.1 200 ") and b"Content-Security-Policy" in \
        portal[2].last_response


def test_a_return_address_outside_printable_ascii_is_refused_before_anything_is_signed() -> None:
    """F24 (fuzz run of 2026-11-30): a return address with a character outside Latin-1 (here U+FFFD from a broken
    percent-escape) passed the origin check, the signing step ran, and only then did the Location header fail to
    encode: a broken answer after a signature.  The return address must be printable ASCII now: 400 first."""
    from .bridge_target import make_bridge, request

    bridge = make_bridge()
    request(bridge, (HERE / "regressions" / "F24-bridge-return-address-not-ascii.http").read_bytes())
    assert bridge[0].last_response.startswith(b"HTTP/1.1 400 ") and bridge[0].performed == []


def test_a_request_line_of_five_words_ending_in_http_0_9_gets_a_400_with_a_status_line() -> None:
    """F25 (fuzz run of 2026-11-30): ``POST /v POST /v1/sign HTTP/1.11/sign HTTP/0.9`` -- http.server takes the last
    word for the version before refusing the line, so its 400 page went out in HTTP/0.9's way, without a status
    line.  Every answer of the small listeners starts with an HTTP/1.1 status line now (signet.http11)."""
    from .bridge_target import make_bridge, request

    bridge = make_bridge()
    request(bridge, (HERE / "regressions" / "F25-bridge-bad-request-line-ending-http-0.9.http").read_bytes())
    assert bridge[0].last_response.startswith(b"HTTP/1.1 400 ") and bridge[0].performed == []


def test_a_refused_form_never_has_its_body_read_as_the_next_request() -> None:
    """F26 (fuzz run of 2026-11-30, the kiosk target's first minute): a signing form refused before its body was
    read (here 415, a mangled Content-Type) left the body on the kept-alive connection; it was read as the next
    request line and http.server's 400 page quoted it -- with the PIN.  Now every form post is the connection's
    last request, and the small listeners' error pages never quote a request (signet.http11)."""
    from .kiosk_target import PIN, make_kiosk, request

    kiosk = make_kiosk()
    request(kiosk, (HERE / "regressions" / "F26-kiosk-unread-form-body-read-as-next-request.http").read_bytes())
    out = kiosk[0].last_response
    assert out.startswith(b"HTTP/1.1 415 ") and out.count(b"HTTP/1.1 ") == 1 and PIN.encode() not in out
    assert kiosk[0].signed == []
