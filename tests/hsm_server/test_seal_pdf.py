"""The platform seal of a PDF signed by two token keys: PAdES B-LTA judged by pyHanko's AdES LTA validation (every
signature PASSED, with our signing root as the only anchor and revocation information required) and by pdfsig
(every signature trusted, the last one covering the whole document); a TSA that fails means no seal."""

from __future__ import annotations

import asyncio
import io

import pytest
from asn1crypto import x509

from tests.hsm_server.conftest import openssl


def _signed_by_two(pki, person, tmp_path):
    from formats.pades import PdfSignOptions, sign_pdf
    from formats.samplepdf import make_contract_pdf
    from formats.signer import TokenSigner

    src = tmp_path / "contract.pdf"
    make_contract_pdf(src, "Sealed lease", ["Zhang San", "Landlord Ltd"])
    for n in (1, 2):
        info = pki.agent.generate_key("p256", f"seal-party-{n}-{tmp_path.name}")
        issued = pki.ca.issue(pki.agent.create_csr(info.key_id, {"common_name": "x"}), person, f"p-seal-{n}")
        signer = TokenSigner(pki.agent, info.key_id, certificate=issued.der, chain=list(issued.chain))
        out = tmp_path / f"signed{n}.pdf"
        sign_pdf(src, out, signer, PdfSignOptions(field_name=f"party{n}", level="B-T", timestamp_url=f"{pki.url}/tsa"))
        src = out
    return src.read_bytes()


def _seal_signer(pki):
    from formats.signer import TokenSigner
    from server.ca import Role

    key = pki.keys[Role.SEAL]
    return TokenSigner(pki.token, key.key_id, certificate=key.certificate_der,
                       chain=list(pki.keys.chain_der(Role.SEAL)))


def _lta(pki, data: bytes):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import ades
    from pyhanko.sign.validation.policy_decl import PdfSignatureValidationSpec, SignatureValidationSpec
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    from server.ca import Role

    root = x509.Certificate.load(pki.keys.certificate_der(Role.SIGNING_ROOT))
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(cert_validation_policy=CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[root]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))))

    async def run():
        r = PdfFileReader(io.BytesIO(data))
        return [(s.field_name, await ades.ades_lta_validation(s, spec)) for s in r.embedded_regular_signatures]

    return asyncio.run(run())


def test_a_sealed_pdf_is_b_lta_for_every_signature_and_pdfsig_trusts_it(pki, person, tmp_path):
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from server.ca import Role
    from server.seal.pdf import seal_pdf
    from tests.pki import make_nssdb, pdfsig

    signed = _signed_by_two(pki, person, tmp_path)
    sealed = seal_pdf(signed, _seal_signer(pki), HTTPTimeStamper(f"{pki.url}/tsa"),
                      [pki.keys.certificate_der(Role.SIGNING_ROOT)])
    assert sealed.startswith(signed)  # incremental: not one signed byte changed
    results = _lta(pki, sealed)
    assert [name for name, _ in results] == ["party1", "party2", "signet-seal"]
    for name, res in results:
        assert res.ades_subindic is AdESPassed.OK, (name, res.ades_subindic, res.api_status.pretty_print_details())
    # pdfsig (poppler 22.12) trusts the parties' and the seal's CAdES signatures and cannot validate a document
    # timestamp (ETSI.RFC3161: "Unable to validate this type"); the seal's revision, cut where the seal ends,
    # is "Total document signed".  No online OCSP by NSS: revocation is judged by pyHanko above.
    from asn1crypto import pem
    from pyhanko.pdf_utils.reader import PdfFileReader

    nss = make_nssdb(tmp_path / "nss", pem.armor("CERTIFICATE", pki.keys.certificate_der(Role.SIGNING_ROOT)))
    (tmp_path / "sealed.pdf").write_bytes(sealed)
    v = pdfsig(tmp_path / "sealed.pdf", nss, ocsp=False)
    assert v.text.count("Signature is Valid.") == 3 and v.text.count("Certificate is Trusted.") == 3, v.text
    sigs = PdfFileReader(io.BytesIO(sealed)).embedded_signatures
    _, _, start, length = sigs[2].byte_range
    (tmp_path / "seal-revision.pdf").write_bytes(sealed[:start + length])
    v = pdfsig(tmp_path / "seal-revision.pdf", nss, ocsp=False)
    assert "Signature #3" in v.text and "Total document signed" in v.text.split("Signature #3")[1], v.text
    # the document timestamp, judged by openssl ts -verify over the bytes it covers, under the signing root alone
    a, b, c, d = sigs[3].byte_range
    (tmp_path / "covered.bin").write_bytes(sealed[a:a + b] + sealed[c:c + d])
    (tmp_path / "doc-ts.der").write_bytes(sigs[3].pkcs7_content)
    (tmp_path / "root.pem").write_bytes(pem.armor("CERTIFICATE", pki.keys.certificate_der(Role.SIGNING_ROOT)))
    r = openssl("ts", "-verify", "-data", str(tmp_path / "covered.bin"), "-in", str(tmp_path / "doc-ts.der"),
                "-token_in", "-CAfile", str(tmp_path / "root.pem"))
    assert "Verification: OK" in r.stdout, r.stdout + r.stderr
    # the DSS holds validation data for the parties' certificates
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed)))
    assert len(list(dss.ocsps)) >= 3


def test_a_tsa_that_fails_means_no_seal(pki, person, tmp_path):
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from server.ca import Role
    from server.seal.pdf import SealFailed, seal_pdf

    signed = _signed_by_two(pki, person, tmp_path)
    with pytest.raises(SealFailed):
        seal_pdf(signed, _seal_signer(pki), HTTPTimeStamper(f"{pki.url}/no-such-tsa", timeout=5),
                 [pki.keys.certificate_der(Role.SIGNING_ROOT)])


def test_lta_renewal_is_due_by_the_injected_clock_and_the_result_is_still_b_lta(pki, person, tmp_path):
    """An archived sealed PDF whose document timestamp's certificate nears expiry (the clock moved there) gets
    a new document timestamp with fresh validation data, as a new archive object; pyHanko still says B-LTA."""
    from datetime import timedelta

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from server import audit
    from server.archive import Archive
    from server.ca import Role
    from server.clock import ManualClock
    from server.envelopes import records
    from server.envelopes.parties import Parties
    from server.envelopes.schema import MIGRATIONS as ENVELOPES
    from server.identity import IdentityService
    from server.notify import OutboxChannel
    from server.runtime import seal_key
    from server.seal import pdf
    from server.seal.sealer import RENEW_BEFORE, Sealer
    from server.sealing import AesGcmBox
    from server.store import open_store

    roots = [pki.keys.certificate_der(Role.SIGNING_ROOT)]
    tsa = HTTPTimeStamper(f"{pki.url}/tsa")
    sealed = pdf.seal_pdf(_signed_by_two(pki, person, tmp_path), _seal_signer(pki), tsa, roots)
    expiry = pdf.last_timestamp_expiry(sealed)
    assert expiry is not None
    store = open_store(str(tmp_path / "s.sqlite"))
    store.migrate("envelopes", ENVELOPES)
    audit.migrate(store)
    archive = Archive(pki.token, store, tmp_path / "archive", kek_label=pki.keys.archive_kek_label)
    clock = ManualClock(expiry - RENEW_BEFORE - timedelta(days=1))
    box = AesGcmBox(b"k" * 32)
    identity = IdentityService(store, box, b"h" * 32, OutboxChannel(store, box, clock), clock)
    sealer = Sealer(store, archive.blobs("o1"), archive, Parties(identity), key=seal_key(pki.token, pki.keys),
                    timestamper=lambda: tsa, trust_roots=tuple(roots), clock=clock)
    first = archive.put("o1", sealed)
    store.insert("sealed_objects", {"envelope_id": "e1", "kind": "document", "document_id": "d1", "org": "o1",
                                    "sha256": first, "size": len(sealed), "ts_expires_at": records.text(expiry)})
    assert sealer.renew_once() == 0  # not yet: more than RENEW_BEFORE left
    clock.advance(2 * 86400)
    assert sealer.renew_once() == 1
    [obj] = sealer.objects("e1")
    assert obj.sha256 != first and archive.get("o1", first) == sealed  # write-once: the earlier object stays
    renewed = archive.get("o1", obj.sha256)
    assert renewed.startswith(sealed)
    stamps = [s for s in PdfFileReader(io.BytesIO(renewed)).embedded_signatures
              if s.sig_object_type == "/DocTimeStamp"]
    assert len(stamps) == 2
    for name, res in _lta(pki, renewed):
        assert res.ades_subindic is AdESPassed.OK, (name, res.ades_subindic)
    [leaf] = [r for r in (audit.AuditLog(store).leaf(i) for i in range(audit.AuditLog(store).size())) if r]
    assert (leaf["kind"], leaf["subject"]) == ("archive.lta_renewed", "e1") and obj.sha256 in leaf["payload"]
    assert sealer.renew_once() == 0  # renewed just now: the next one no sooner than RENEW_EVERY
