"""The general verifier (formats.verify_pdf_bytes, behind ``signet verify`` and the agent's VerifyPdf) is as
strict as the revision check (formats.strict): two tampered documents pyHanko alone calls valid are not.

1. A ``/ByteRange`` whose lengths add up to the file size but that does not sign everything around the
   signature value: ``[0 a 0 n-b]`` signs the first ``n - b`` bytes twice and nothing after the value (rest
   of the signature dictionary, cross-reference section, trailer); pyHanko calls it ENTIRE_FILE.
2. A revision that defines an object the signed page referred to but that did not exist: new text on a signed
   page, which pyHanko's default difference analysis takes for an orphan and accepts.

The attacks are those of tests/formats/test_revision.py, built with its helpers.
"""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from formats import VerificationReport, verify_pdf_bytes
from formats.strict import BYTE_RANGE_PROBLEM

from . import hostile
from .test_revision import DOCUMENT_TEXT, World, agent_sign, dangling_reference_attack, resign

CHANGED = "a later revision changed what was signed (difference analysis: a change no rule allows)"


@pytest.fixture(scope="module")
def world(revocation_srv, rsa_setup, ec_setup) -> World:
    return World(revocation_srv, rsa_setup, ec_setup)


@pytest.fixture(scope="module")
def one(world, tmp_path_factory) -> bytes:
    return agent_sign(world.contract, world.alice, "Alice", tmp_path_factory.mktemp("one"))


@pytest.fixture(scope="module")
def two(world, one, tmp_path_factory) -> bytes:
    return agent_sign(one, world.bob, "Bob", tmp_path_factory.mktemp("two"))


def verify(world: World, data: bytes) -> VerificationReport:
    return verify_pdf_bytes(data, world.roots)  # online: the test PKI's own OCSP responder and CRLs


def invalid(rep: VerificationReport, reason: str) -> VerificationReport:
    assert not rep.valid and reason in rep.reasons(), rep.reasons()
    assert not any(t in r for r in rep.reasons() for t in DOCUMENT_TEXT)
    return rep


def _pyhanko_coverage(data: bytes, index: int) -> SignatureCoverageLevel:
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    emb: EmbeddedPdfSignature = reader.embedded_signatures[index]
    emb.compute_digest()
    return emb.evaluate_signature_coverage()


# -- legitimate documents stay valid


def test_second_signature_in_an_incremental_update_is_valid(world, one, two):
    for data in (one, two):
        rep = verify(world, data)
        assert rep.valid and rep.reasons() == [] and rep.problems == (), rep.reasons()
    rep = verify(world, two)
    assert [s.field_name for s in rep.signatures] == ["Alice", "Bob"]
    assert [s.coverage for s in rep.signatures] == ["ENTIRE_REVISION", "ENTIRE_FILE"]
    assert [s.modification_level for s in rep.signatures] == ["FORM_FILLING", "NONE"]
    assert all(s.docmdp_ok for s in rep.signatures)


def test_resigned_with_the_standard_byte_range_is_valid(world, two):
    """The re-signing helper itself makes valid signatures: only the range shape differs in the attacks."""
    same_shape = resign(two, world.bob, lambda a, b, n: [0, a, b, n - b])
    assert same_shape != two
    assert verify(world, same_shape).valid


# -- 1. byte ranges pyHanko calls ENTIRE_FILE that leave bytes unsigned

RANGES = {
    "overlapping": lambda a, b, n: [0, a, 0, n - b],  # signs [0, n-b) twice: nothing after the value
    "shifted": lambda a, b, n: [0, a - 2, b - 2, n - b + 2],  # the gap two bytes early: "s " unsigned
}


@pytest.mark.parametrize("shape", list(RANGES))
def test_second_signature_with_a_wrapping_byte_range(world, two, shape):
    wrapped = resign(two, world.bob, RANGES[shape])
    assert _pyhanko_coverage(wrapped, 1) == SignatureCoverageLevel.ENTIRE_FILE  # the hole this closes
    rep = invalid(verify(world, wrapped), f"signature 'Bob': {BYTE_RANGE_PROBLEM}")
    alice, bob = rep.signatures
    assert alice.ok, alice.problems  # Alice's signature and Bob's revision are untouched
    assert bob.intact and bob.valid and bob.trusted  # the cryptography is fine: the range is not
    assert bob.problems == (BYTE_RANGE_PROBLEM,)
    assert bob.coverage == "UNCLEAR" and bob.modification_level == "OTHER" and bob.docmdp_ok is False
    assert rep.to_dict()["signatures"][1]["coverage"] == "UNCLEAR"


def test_only_signature_with_an_overlapping_byte_range(world, one):
    wrapped = resign(one, world.alice, RANGES["overlapping"])
    assert _pyhanko_coverage(wrapped, 0) == SignatureCoverageLevel.ENTIRE_FILE
    rep = invalid(verify(world, wrapped), f"signature 'Alice': {BYTE_RANGE_PROBLEM}")
    assert rep.signatures[0].intact and rep.signatures[0].valid


def test_overlapping_byte_range_then_a_later_revision(world, two):
    """Bytes appended after a wrapped last signature count as covered by nothing."""
    wrapped = resign(two, world.bob, RANGES["overlapping"])
    later = hostile.incremental(wrapped, {3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"})
    rep = invalid(verify(world, later), f"signature 'Bob': {BYTE_RANGE_PROBLEM}")
    assert not rep.signatures[0].ok  # Alice's difference analysis refuses the font change


# -- 2. filling a reference the signed document left dangling


def test_revision_that_fills_a_dangling_reference(world, tmp_path):
    signed, attacked = dangling_reference_attack(world, tmp_path)
    assert verify(world, signed).valid  # a dangling reference alone is harmless
    rep = invalid(verify(world, attacked), f"signature 'Alice': {CHANGED}")
    alice, bob = rep.signatures
    assert alice.intact and alice.valid and alice.trusted and alice.problems == (CHANGED,)
    assert alice.modification_level == "OTHER" and alice.docmdp_ok is False
    assert bob.ok, bob.problems  # Bob signed everything, the new text included: his signature is fine
    assert rep.problems == ()


def test_dangling_reference_filled_without_a_new_signature(world, tmp_path):
    signed, _ = dangling_reference_attack(world, tmp_path)
    filled = hostile.incremental(signed, {99: b"<< /Length 0 >>\nstream\nendstream"})
    rep = invalid(verify(world, filled), f"signature 'Alice': {CHANGED}")
    assert rep.problems == (f"{len(filled) - len(signed)} bytes of revisions added after the last signature are "
                            f"covered by no signature, and difference analysis did not accept them",)
