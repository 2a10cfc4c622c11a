"""Every byte of a signed PDF is covered by a signature or in a revision difference analysis accepted.

pyHanko alone accepts bytes appended after the last revision (DESIGN.md, known pitfalls); verify_pdf must not.
"""

from __future__ import annotations

import pytest

from formats import PdfSignOptions, sign_pdf, verify_pdf

from . import hostile


@pytest.fixture
def signed(rsa_setup, contract, tmp_path):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions())
    return out


@pytest.mark.parametrize("junk", [b"x", b"\n", b"% a comment\n", b"junk appended after the signature\n" * 30,
                                  b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R /OpenAction 9 0 R >>\nendobj\n"])
def test_bytes_after_the_last_revision_make_it_invalid(junk, signed, ca):
    signed.write_bytes(signed.read_bytes() + junk)
    rep = verify_pdf(signed, [ca.root_der])
    assert not rep.valid
    assert rep.problems == (f"{len(junk)} bytes after the last revision are covered by no signature",)
    assert rep.signatures[0].ok  # the signature itself is fine: the document is not
    assert rep.reasons() == [f"{len(junk)} bytes after the last revision are covered by no signature"]


def test_junk_after_a_second_signature(rsa_setup, ec_setup, contract, tmp_path, ca):
    one, two = tmp_path / "one.pdf", tmp_path / "two.pdf"
    sign_pdf(contract, one, rsa_setup.signer, PdfSignOptions())
    sign_pdf(one, two, ec_setup.signer, PdfSignOptions())
    assert verify_pdf(two, [ca.root_der]).valid
    two.write_bytes(two.read_bytes() + b"\x00" * 7)
    assert verify_pdf(two, [ca.root_der]).reasons() == ["7 bytes after the last revision are covered by no signature"]


def test_valid_incremental_update_adding_a_second_signature_is_valid(rsa_setup, ec_setup, contract, tmp_path, ca):
    one, two = tmp_path / "one.pdf", tmp_path / "two.pdf"
    sign_pdf(contract, one, rsa_setup.signer, PdfSignOptions())
    sign_pdf(one, two, ec_setup.signer, PdfSignOptions())
    rep = verify_pdf(two, [ca.root_der])
    assert rep.valid and rep.problems == () and rep.reasons() == []
    assert [s.coverage for s in rep.signatures] == ["ENTIRE_REVISION", "ENTIRE_FILE"]


def test_unaccepted_revision_after_the_last_signature(signed, ca):
    data = signed.read_bytes()
    # a new revision that rewrites the first page's content stream: nobody signed it, nothing allows it
    stream = b"BT /F1 30 Tf 56 700 Td (Pay Mallory 1,000,000) Tj ET\n"
    update = hostile.incremental(data, {6: b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream"},
                                 root=1)
    signed.write_bytes(update)
    rep = verify_pdf(signed, [ca.root_der])
    assert not rep.valid
    assert rep.problems == (f"{len(update) - len(data)} bytes of revisions added after the last signature are "
                            f"covered by no signature, and difference analysis did not accept them",)
    assert rep.signatures[0].docmdp_ok is False and rep.signatures[0].modification_level == "OTHER"
    # (an accepted later revision, a DSS update, is in test_revocation.test_dss_revocation_data_is_used)
