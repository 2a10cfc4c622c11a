"""PAdES B-T by an enrolled token key, validated by pyHanko with our root as the only trust anchor and
revocation information fetched over HTTP from our OCSP responder and CRLs (revocation required)."""

from __future__ import annotations

import asyncio

from asn1crypto import x509


def _validate(pki, pdf_path):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    from server.ca import Role

    async def run():
        async with AIOHttpFetcherBackend() as fetchers:
            vc = ValidationContext(
                trust_roots=[x509.Certificate.load(pki.keys.certificate_der(Role.SIGNING_ROOT))],
                allow_fetching=True, revocation_mode="require", fetchers=fetchers,
            )
            with open(pdf_path, "rb") as f:
                sig = PdfFileReader(f).embedded_signatures[0]
                status = await async_validate_pdf_signature(sig, signer_validation_context=vc,
                                                            ts_validation_context=vc)
            return status, list(vc.ocsps), list(vc.crls)

    return asyncio.run(run())


def test_pades_bt_validates_with_our_ocsp_then_fails_once_revoked(pki, person, tmp_path):
    from formats.pades import PdfSignOptions, sign_pdf
    from formats.samplepdf import make_contract_pdf
    from formats.signer import TokenSigner

    info = pki.agent.generate_key("p256", "pades-signer")
    issued = pki.ca.issue(pki.agent.create_csr(info.key_id, {"common_name": "x"}), person, "p-pades")
    signer = TokenSigner(pki.agent, info.key_id, certificate=issued.der, chain=list(issued.chain))
    src, out = tmp_path / "contract.pdf", tmp_path / "signed.pdf"
    make_contract_pdf(src, "Lease", ["Zhang San", "Landlord Ltd"])
    sign_pdf(src, out, signer, PdfSignOptions(level="B-T", timestamp_url=f"{pki.url}/tsa"))

    status, ocsps, crls = _validate(pki, out)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    # the leaf's status came from our responder, signed by the delegated responder key
    answered = {r.basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_id"]["serial_number"].native
                for r in (o.ocsp_response_data if hasattr(o, "ocsp_response_data") else o for o in ocsps)}
    assert issued.serial in answered
    assert crls  # the issuing CA's status came from the root CRL

    pki.ca.revoke(issued.serial, "key_compromise")
    status, _, _ = _validate(pki, out)
    assert status.intact and status.valid and not status.bottom_line, status.pretty_print_details()
    assert "revoked" in status.pretty_print_details().lower()
