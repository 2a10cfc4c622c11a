"""Validation of a returned envelope revision (formats.revision): real token signatures, real attacks.

Signers are SoftHSM keys certified by a Signet-shaped signing hierarchy (marker and policies in the root, the
signing policy in each signer certificate), so the Signet policy rule is in force.  Legitimate revisions are
made the agent's way (formats.sign_pdf); attacks are built with pyHanko's incremental writer (a change and the
new signature in one revision), by appending hand-made revisions (tests.formats.hostile.incremental), or by
re-signing a /ByteRange of our choosing with the token key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import re
import time
from dataclasses import dataclass

import pytest
from asn1crypto import cms
from cryptography import x509 as cx509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, DiffResult, ModificationLevel
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper

from formats import InvalidOptions, PdfSignOptions, TokenSigner, sign_detached, sign_pdf
from formats.pades import reserve_for
from formats.policy import DEFAULT_SIGNING_POLICY, SIGNING_ROOT_MARKER
from formats.revision import (
    CMS_INVALID,
    REVISION_DISALLOWED_CHANGES,
    REVISION_EARLIER_SIGNATURE_BROKEN,
    REVISION_NOT_INCREMENTAL,
    REVISION_NOT_ONE_SIGNATURE,
    REVISION_SIGNATURE_INVALID,
    REVISION_TRAILING_BYTES,
    REVISION_UNREADABLE,
    REVISION_WRONG_FIELD,
    RevisionVerdict,
    check_detached_signature,
    check_pdf_revision,
)
from formats.samplepdf import contract_pdf_bytes

from . import hostile, minipki, mutants
from .test_policy import Hierarchies

TITLE, PARTIES = "Revision Test Agreement", ["Alice Example", "Bob Example"]
DOCUMENT_TEXT = (TITLE, *PARTIES, "Clause", "Pay Mallory")  # never in a verdict's message
PAY_MALLORY = b"BT /F1 30 Tf 56 500 Td (Pay Mallory 1,000,000) Tj ET\n"


# -- signers and documents


@dataclass(frozen=True)
class Party:
    cert: bytes
    signer: TokenSigner

    @classmethod
    def on_token(cls, setup, ca: minipki.MiniCA, cn: str) -> Party:
        """The token key of ``setup``, certified by ``ca`` with the Signet signing policy."""
        cert = minipki.token_certificate(setup.token, setup.key_id, ca, cn, policies=[DEFAULT_SIGNING_POLICY])
        return cls(cert, TokenSigner(setup.token, setup.key_id, certificate=cert, chain=ca.chain_der))


class World:
    def __init__(self, srv, rsa_setup, ec_setup) -> None:
        self.pki = Hierarchies(srv)
        self.roots = [self.pki.signing_root.root_der]
        self.alice = Party.on_token(rsa_setup, self.pki.signing_ca, "Alice Token")
        self.bob = Party.on_token(ec_setup, self.pki.signing_ca, "Bob Token")
        self.carol = Party.on_token(ec_setup, self.pki.signing_ca, "Carol Token")
        self.contract = contract_pdf_bytes(TITLE, PARTIES, pages=3)


@pytest.fixture(scope="module")
def world(revocation_srv, rsa_setup, ec_setup) -> World:
    return World(revocation_srv, rsa_setup, ec_setup)


def agent_sign(data: bytes, party: Party, field: str, tmp_path, **opts) -> bytes:
    """A revision made the agent's way: formats.sign_pdf."""
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(data)
    sign_pdf(src, out, party.signer, PdfSignOptions(field_name=field, **opts))
    return out.read_bytes()


def writer_sign(data: bytes, party: Party, field: str, mutate=None, *, certify: bool = False,
                force: bool = False) -> bytes:
    """pyHanko's incremental writer: ``mutate(writer)`` first, then the signature, in one revision.

    ``certify``: a certification signature that permits no changes; ``force``: sign even so."""
    w = IncrementalPdfFileWriter(io.BytesIO(data))
    if mutate is not None:
        mutate(w)
    meta = signers.PdfSignatureMetadata(field_name=field, subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm=party.signer.digest_algorithm, certify=certify,
                                        docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    pdf_signer = signers.PdfSigner(meta, party.signer)
    if force:  # as pyHanko's own tests do, to make what its signer refuses to make
        pdf_signer._enforce_certification_constraints = lambda _: None  # type: ignore[method-assign, assignment]
    return pdf_signer.sign_pdf(w, bytes_reserved=reserve_for(party.signer, False)).getvalue()


def resign(data: bytes, party: Party, byte_range) -> bytes:
    """``data`` with its last signature made again by ``party`` over ``byte_range(a, b, size)``, where [a, b) is
    the signature value's hex string: an intact, valid, trusted signature over bytes of our choosing."""
    a = data.rindex(b"/Contents <") + len(b"/Contents ")
    b = data.index(b">", a) + 1
    slot = list(re.finditer(rb"/ByteRange \[[^\]]*\] *", data))[-1]
    br = byte_range(a, b, len(data))
    text = b"/ByteRange [%d %d %d %d]" % tuple(br)
    out = bytearray(data[:slot.start()] + text.ljust(slot.end() - slot.start()) + data[slot.end():])
    h = hashlib.sha256()
    for lo, n in ((br[0], br[1]), (br[2], br[3])):
        h.update(bytes(out[lo:lo + n]))
    attrs = PdfCMSSignedAttributes(signing_time=dt.datetime.now(dt.UTC))
    ci = asyncio.run(party.signer.async_sign(h.digest(), "sha256", use_pades=True, signed_attr_settings=attrs))
    out[a + 1:b - 1] = ci.dump().hex().encode().ljust(b - a - 2, b"0")
    return bytes(out)


def check(world: World, previous: bytes, new: bytes, **kw) -> RevisionVerdict:
    return check_pdf_revision(previous, new, trust_roots=world.roots, **kw)


def refused(v: RevisionVerdict, reason: str) -> RevisionVerdict:
    assert not v.accepted and v.reason == reason, (v.reason, v.message)
    assert v.message and "\n" not in v.message and len(v.message) <= 400
    assert not any(t in v.message for t in DOCUMENT_TEXT), v.message
    return v


def accepted(v: RevisionVerdict) -> RevisionVerdict:
    assert v.accepted and v.reason == "" and v.message == "", (v.reason, v.message)
    assert v.report is not None and v.report.valid, v.report.reasons()
    return v


@pytest.fixture(scope="module")
def one(world, tmp_path_factory) -> bytes:
    """The contract signed by Alice (field "Alice", invisible): the previous revision of most tests."""
    return agent_sign(world.contract, world.alice, "Alice", tmp_path_factory.mktemp("one"))


@pytest.fixture(scope="module")
def two(world, one, tmp_path_factory) -> bytes:
    """Bob's legitimate revision of ``one`` (field "Bob")."""
    return agent_sign(one, world.bob, "Bob", tmp_path_factory.mktemp("two"))


def _page(w, n: int = 0):
    return w.root["/Pages"]["/Kids"][n]


def _content_ref(data: bytes, page: int = 0) -> int:
    return int(PdfFileReader(io.BytesIO(data)).root["/Pages"]["/Kids"][page].raw_get("/Contents").idnum)


def _stream(body: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(body) + body + b"endstream"


def _page_object(data: bytes, num: int) -> bytes:
    m = re.search(rb"\n%d 0 obj\n(<<.*?>>)\nendobj" % num, data, re.S)
    assert m is not None
    return m.group(1)


# -- accepted


def test_second_signer_revision_is_accepted(world, one, two):
    v = accepted(check(world, one, two, expected_field="Bob"))
    assert v.field_name == "Bob" and v.signer_certificate_der == world.bob.cert
    assert world.pki.signing_ca.root_der in v.signer_chain_der
    assert v.changed_fields == frozenset({"Bob"})
    assert [s.field_name for s in v.report.signatures] == ["Alice", "Bob"]
    assert all(s.policy_ok for s in v.report.signatures)


def test_first_signature_on_an_unsigned_pdf_is_accepted(world, one):
    v = accepted(check(world, world.contract, one, expected_field="Alice"))
    assert v.field_name == "Alice" and v.signer_certificate_der == world.alice.cert


def test_visible_signatures_in_placed_fields_are_accepted(world, tmp_path):
    """The sender places a field per signer (an unsigned revision); each signs visibly in their own field."""
    w = IncrementalPdfFileWriter(io.BytesIO(world.contract))
    fields.append_signature_field(w, fields.SigFieldSpec("Alice", on_page=2, box=(56, 60, 276, 130)))
    fields.append_signature_field(w, fields.SigFieldSpec("Bob", on_page=2, box=(300, 60, 540, 130)))
    placed = io.BytesIO()
    w.write(placed)
    locked = placed.getvalue()
    alice = agent_sign(locked, world.alice, "Alice", tmp_path, visible=True, page=2, box=(56, 60, 276, 130))
    accepted(check(world, locked, alice, expected_field="Alice"))
    bob = agent_sign(alice, world.bob, "Bob", tmp_path, visible=True, page=2, box=(300, 60, 540, 130))
    v = accepted(check(world, alice, bob, expected_field="Bob", revocation="online"))
    assert {c.status for s in v.report.signatures for c in s.revocation} == {"good"}  # our OCSP responder


def test_b_t_revision_is_accepted(world, one, tmp_path, tsa_url, ca):
    new = agent_sign(one, world.bob, "Bob", tmp_path, level="B-T", timestamp_url=tsa_url)
    v = accepted(check_pdf_revision(one, new, trust_roots=[*world.roots, ca.root_der]))  # ca certifies the TSA
    assert v.report.signatures[1].timestamp.ok


def test_detached_cms_over_the_content_is_accepted(world):
    content = b"<annex>terms</annex>\n" * 500
    sig = sign_detached(io.BytesIO(content), world.bob.signer)
    v = check_detached_signature(content, sig, trust_roots=world.roots)
    assert v.accepted and v.reason == "" and v.field_name is None, v.message
    assert v.signer_certificate_der == world.bob.cert and v.report.valid


# -- refused: not an incremental update


def test_rewritten_file_is_not_incremental(world, one, two):
    out = io.BytesIO()
    copy_into_new_writer(PdfFileReader(io.BytesIO(two))).write(out)  # a re-saved file: same content, new bytes
    refused(check(world, one, out.getvalue()), REVISION_NOT_INCREMENTAL)


def test_different_prefix_is_not_incremental(world, one, two):
    changed = bytearray(two)
    i = two.index(b"Clause 1")
    changed[i + 2] = ord("b")
    v = refused(check(world, one, bytes(changed)), REVISION_NOT_INCREMENTAL)
    assert f"first difference at byte {i + 2}" in v.message


@pytest.mark.parametrize("cut", [0, 1, 500], ids=["same", "one-byte-shorter", "truncated"])
def test_shorter_or_same_file_is_not_incremental(world, one, cut):
    v = refused(check(world, one, one[:len(one) - cut]), REVISION_NOT_INCREMENTAL)
    assert "is not longer than the previous revision" in v.message


def test_revision_chain_that_skips_the_previous_revision_is_not_incremental(world, one):
    """Bytes start with ``one``, but the new revision's /Prev goes back to the unsigned contract."""
    contract_xref = int(re.findall(rb"startxref\s+(\d+)", world.contract)[-1])
    upd = hostile.incremental(one, {3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"})
    skipping = upd[:len(one)] + re.sub(rb"/Prev \d+", b"/Prev %d" % contract_xref, upd[len(one):])
    refused(check(world, one, skipping), REVISION_NOT_INCREMENTAL)


# -- refused: not exactly one new signature, in the right field


@pytest.mark.parametrize("junk", [b"x", b"% a comment\n", b"\x00" * 7, b"junk appended after the signature\n" * 20])
def test_trailing_bytes_after_the_new_revision(world, one, two, junk):
    v = refused(check(world, one, two + junk), REVISION_TRAILING_BYTES)
    assert v.message.startswith(f"{len(junk)} bytes after") and v.field_name == "Bob"
    assert v.signer_certificate_der == world.bob.cert  # known even when refused


def test_data_in_the_signature_value_padding(world, one, two):
    a = two.rindex(b"/Contents <") + len(b"/Contents <")
    b = two.index(b">", a)
    assert two[b - 8:b] == b"00000000"  # the reserved space ends in zero padding
    hidden = two[:b - 8] + b"0badc0de" + two[b:]
    v = refused(check(world, one, hidden), REVISION_TRAILING_BYTES)
    assert "zero padding" in v.message


def test_two_new_signatures(world, two, one, tmp_path):
    three = agent_sign(two, world.carol, "Carol", tmp_path)
    accepted(check(world, two, three))
    v = refused(check(world, one, three), REVISION_NOT_ONE_SIGNATURE)
    assert "adds 2 signatures" in v.message


def test_no_new_signature(world, one):
    w = IncrementalPdfFileWriter(io.BytesIO(one))
    fields.append_signature_field(w, fields.SigFieldSpec("Bob"))  # an empty field, nothing signed
    out = io.BytesIO()
    w.write(out)
    assert "adds 0 signatures" in refused(check(world, one, out.getvalue()), REVISION_NOT_ONE_SIGNATURE).message
    refused(check(world, one, one + b"\n"), REVISION_NOT_ONE_SIGNATURE)  # no revision at all


def test_revision_appended_after_the_new_signature(world, one, two):
    """An incremental-saving attack: the signed revision, then an unsigned one that changes a font."""
    later = hostile.incremental(two, {3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"})
    v = refused(check(world, one, later), REVISION_NOT_ONE_SIGNATURE)
    assert "not in the last revision" in v.message


def test_document_timestamp_instead_of_a_signature(world, one, tsa_url):
    w = IncrementalPdfFileWriter(io.BytesIO(one))
    stamped = signers.PdfTimeStamper(HTTPTimeStamper(tsa_url)).timestamp_pdf(w, "sha256")
    v = refused(check(world, one, stamped.getvalue()), REVISION_NOT_ONE_SIGNATURE)
    assert "document timestamp" in v.message


def test_wrong_field(world, one, two):
    v = refused(check(world, one, two, expected_field="Carol"), REVISION_WRONG_FIELD)
    assert v.field_name == "Bob" and "'Carol'" in v.message


# -- refused: the new signature itself


def test_signer_certified_by_another_ca(world, one, ec_setup, revocation_srv):
    other_root = minipki.MiniCA("Another Signing Root", revocation_srv,
                                policies=[SIGNING_ROOT_MARKER, DEFAULT_SIGNING_POLICY])
    stranger = Party.on_token(ec_setup, other_root, "Bob Token")
    v = refused(check(world, one, writer_sign(one, stranger, "Bob")), REVISION_SIGNATURE_INVALID)
    assert "does not chain to a trusted root" in v.message and v.signer_certificate_der == stranger.cert


def test_software_key_without_the_signing_policy(world, one):
    soft = minipki.SoftToken()
    cert = world.pki.signing_ca.issue(minipki.name("Software Key"), soft.public_key)
    party = Party(cert, TokenSigner(soft, "software", certificate=cert, chain=world.pki.signing_ca.chain_der))
    v = refused(check(world, one, writer_sign(one, party, "Bob")), REVISION_SIGNATURE_INVALID)
    assert "signing policies" in v.message


def test_revoked_signer_online(world, one, ec_setup, revocation_srv):
    revoked = Party.on_token(ec_setup, world.pki.signing_ca, "Bob Revoked")
    revocation_srv.revoke(world.pki.signing_ca, cx509.load_der_x509_certificate(revoked.cert).serial_number)
    new = writer_sign(one, revoked, "Bob")
    assert check(world, one, new).accepted  # offline: not checked (a warning), as the caller asked
    v = refused(check(world, one, new, revocation="online"), REVISION_SIGNATURE_INVALID)
    assert "revoked" in v.message


# -- refused: earlier signatures


def _first_field(w):
    return w.root["/AcroForm"]["/Fields"][0]


def test_earlier_signature_removed(world, one):
    def drop(w):
        form = w.root["/AcroForm"]
        form["/Fields"] = generic.ArrayObject(list(form["/Fields"])[1:])
        w.update_container(form)

    refused(check(world, one, writer_sign(one, world.bob, "Bob", mutate=drop)), REVISION_EARLIER_SIGNATURE_BROKEN)


def test_earlier_signature_contents_altered(world, one):
    def alter(w):
        sig = _first_field(w)["/V"]
        der = bytearray(sig["/Contents"])
        der[100] ^= 0x01
        sig["/Contents"] = generic.ByteStringObject(bytes(der))
        w.update_container(sig)

    v = refused(check(world, one, writer_sign(one, world.bob, "Bob", mutate=alter)), REVISION_EARLIER_SIGNATURE_BROKEN)
    assert "rewrites the signature dictionary" in v.message


def test_earlier_signature_replaced_by_a_copy(world, one):
    def replace(w):
        field = _first_field(w)
        field["/V"] = w.add_object(generic.DictionaryObject(field["/V"]))
        w.update_container(field)

    refused(check(world, one, writer_sign(one, world.bob, "Bob", mutate=replace)), REVISION_EARLIER_SIGNATURE_BROKEN)


def test_earlier_signer_revoked_since(world, rsa_setup, revocation_srv, tmp_path):
    alice = Party.on_token(rsa_setup, world.pki.signing_ca, "Alice Revoked Later")
    one = writer_sign(world.contract, alice, "Alice")
    two = writer_sign(one, world.bob, "Bob")
    accepted(check(world, one, two, revocation="online"))
    revocation_srv.revoke(world.pki.signing_ca, cx509.load_der_x509_certificate(alice.cert).serial_number)
    v = refused(check(world, one, two, revocation="online"), REVISION_EARLIER_SIGNATURE_BROKEN)
    assert "earlier signature 1 of 1 is no longer valid" in v.message and "revoked" in v.message


# -- refused: changes beyond adding the signature


def test_earlier_certification_permits_no_changes(world):
    """Alice certified the document with DocMDP "no changes": even a signature is a change it forbids."""
    certified = writer_sign(world.contract, world.alice, "Alice", certify=True)
    with pytest.raises(SigningError):
        writer_sign(certified, world.bob, "Bob")
    v = refused(check(world, certified, writer_sign(certified, world.bob, "Bob", force=True)),
                REVISION_DISALLOWED_CHANGES)
    assert "does not permit" in v.message and v.report is not None  # the verifier's DocMDP verdict


def test_content_stream_added_in_the_new_revision(world, one):
    def sneak(w):
        RawContent(b"q BT /F1 18 Tf 56 400 Td (Pay Mallory) Tj ET Q").add_to_page(w, 0)

    v = refused(check(world, one, writer_sign(one, world.bob, "Bob", mutate=sneak)), REVISION_DISALLOWED_CHANGES)
    assert v.field_name == "Bob" and v.report is None  # refused before any cryptography


def test_page_text_changed_before_the_signature(world, one):
    """An unsigned revision rewrites page 1's content stream, then Bob signs everything (two new revisions)."""
    changed = hostile.incremental(one, {_content_ref(one): _stream(PAY_MALLORY)})
    refused(check(world, one, writer_sign(changed, world.bob, "Bob")), REVISION_DISALLOWED_CHANGES)


def test_first_signature_that_changes_content(world):
    def sneak(w):
        RawContent(b"q BT /F1 18 Tf 56 400 Td (Pay Mallory) Tj ET Q").add_to_page(w, 1)

    refused(check(world, world.contract, writer_sign(world.contract, world.alice, "Alice", mutate=sneak)),
            REVISION_DISALLOWED_CHANGES)


def test_annotation_added(world, one):
    def annotate(w):
        page = _page(w)
        note = w.add_object(generic.DictionaryObject({
            generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
            generic.pdf_name("/Rect"): generic.ArrayObject(map(generic.NumberObject, (56, 400, 400, 440))),
            generic.pdf_name("/Contents"): generic.pdf_string("Pay Mallory"),
            generic.pdf_name("/DA"): generic.pdf_string("/Helv 12 Tf 0 g"),
        }))
        annots = generic.ArrayObject(page["/Annots"] if "/Annots" in page else [])
        annots.append(note)
        page["/Annots"] = annots
        w.update_container(page)

    refused(check(world, one, writer_sign(one, world.bob, "Bob", mutate=annotate)), REVISION_DISALLOWED_CHANGES)


def test_hide_and_replace_shadow_attack(world, tmp_path):
    """The document Alice signs hides an unused content stream; Bob's revision swaps the page onto it."""
    hidden = 40
    prepared = hostile.incremental(world.contract, {hidden: _stream(PAY_MALLORY)})
    one = agent_sign(prepared, world.alice, "Alice", tmp_path)

    def swap(w):
        page = _page(w)
        page["/Contents"] = generic.IndirectObject(hidden, 0, w)
        w.update_container(page)

    refused(check(world, one, writer_sign(one, world.bob, "Bob", mutate=swap)), REVISION_DISALLOWED_CHANGES)


def dangling_reference_attack(world: World, tmp_path) -> tuple[bytes, bytes]:
    """(signed, filled): Alice signs a contract whose first page's /Contents also refers to object 99, which
    does not exist; then a revision defines object 99 (new page text) and Bob signs the result."""
    page_no = _content_ref(world.contract) - 1
    page = _page_object(world.contract, page_no).replace(b"/Contents %d 0 R" % (page_no + 1),
                                                         b"/Contents [%d 0 R 99 0 R]" % (page_no + 1))
    prepared = hostile.incremental(world.contract, {page_no: page})
    one = agent_sign(prepared, world.alice, "Alice", tmp_path)
    filled = hostile.incremental(one, {99: _stream(PAY_MALLORY)})
    return one, writer_sign(filled, world.bob, "Bob")


def test_replace_attack_filling_a_dangling_reference(world, tmp_path):
    """The signed page refers to an object that does not exist yet; the next revision defines it.

    pyHanko's default difference analysis takes the new object for an orphan and accepts the revision (so
    every earlier signature still validates); the revision policy does not ignore orphans."""
    one, new = dangling_reference_attack(world, tmp_path)

    reader = PdfFileReader(io.BytesIO(new), strict=False)
    base = PdfFileReader(io.BytesIO(one), strict=False).xrefs.total_revisions - 1
    lenient = DEFAULT_DIFF_POLICY.review_file(reader, base)
    assert isinstance(lenient, DiffResult) and lenient.modification_level <= ModificationLevel.FORM_FILLING
    refused(check(world, one, new), REVISION_DISALLOWED_CHANGES)


# -- refused: signature wrapping


def test_byte_range_that_skips_everything_after_the_signature_value(world, one, two):
    """[0 a 0 n-b]: the lengths add up to the file size, so pyHanko calls it ENTIRE_FILE, yet nothing after the
    signature value (rest of the signature dictionary, cross-reference table, trailer) is covered."""
    wrapped = resign(two, world.bob, lambda a, b, n: [0, a, 0, n - b])
    v = refused(check(world, one, wrapped), REVISION_DISALLOWED_CHANGES)
    assert "signature wrapping" in v.message
    assert resign(two, world.bob, lambda a, b, n: [0, a, b, n - b]) != two  # the helper really re-signs...
    accepted(check(world, one, resign(two, world.bob, lambda a, b, n: [0, a, b, n - b])))  # ...validly


def test_byte_range_that_stops_inside_the_revision(world, one, two):
    short = resign(two, world.bob, lambda a, b, n: [0, a, b, n - b - 200])
    v = refused(check(world, one, short), REVISION_DISALLOWED_CHANGES)
    assert v.message.startswith("200 bytes of the new signature's own revision")


def test_earlier_signature_replayed_in_a_new_field(world, one):
    """A new field whose value copies Alice's signature dictionary: intact, valid, but over the old bytes."""
    w = IncrementalPdfFileWriter(io.BytesIO(one))
    fields.append_signature_field(w, fields.SigFieldSpec("Bob"))
    alice_sig = _first_field(w)["/V"]
    bob_field = w.root["/AcroForm"]["/Fields"][1]
    bob_field["/V"] = w.add_object(generic.DictionaryObject(alice_sig))
    w.update_container(bob_field)
    out = io.BytesIO()
    w.write(out)
    refused(check(world, one, out.getvalue()), REVISION_DISALLOWED_CHANGES)


# -- refused: unreadable, or anything else


def test_mutants_of_the_new_revision(world, one, two):
    """Mutants of Bob's revision (flips, truncations, xref surgery, bad offsets, splices) after the previous
    bytes: every one ends in a verdict, and one is accepted only if it differs from the genuine revision inside
    the new signature's value (hex digit case, certificates the CMS carries unsigned), the only bytes no
    signature covers by design."""
    start = two.rindex(b"/Contents <") + len(b"/Contents ")
    end = two.index(b">", start) + 1
    seen: dict[str, int] = {}
    for name, data in mutants.mutants({"two": two[len(one):]}, per_seed=200, seed=3):
        new = one + data
        v = check(world, one, new)
        seen[v.reason or "accepted"] = seen.get(v.reason or "accepted", 0) + 1
        if v.accepted:
            assert len(new) == len(two) and new[:start] == two[:start] and new[end:] == two[end:], name
        else:
            refused(v, v.reason)
    assert {REVISION_UNREADABLE, REVISION_DISALLOWED_CHANGES, REVISION_SIGNATURE_INVALID} <= set(seen), seen


def test_garbage(world, one):
    refused(check(world, one, b"garbage"), REVISION_NOT_INCREMENTAL)  # the prefix check comes first
    refused(check(world, one, one + b"garbage " * 400), REVISION_UNREADABLE)  # no %%EOF near the end
    refused(check(world, one, hostile.deep_nesting(one, 1000)), REVISION_UNREADABLE)  # pre-scan
    refused(check(world, b"not a pdf\n", b"not a pdf\n" + one), REVISION_UNREADABLE)
    refused(check(world, b"", one), REVISION_UNREADABLE)
    upd = hostile.incremental(one, {3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"})
    negative_prev = upd[:len(one)] + re.sub(rb"/Prev \d+", b"/Prev -40", upd[len(one):])
    refused(check(world, one, negative_prev), REVISION_UNREADABLE)


def test_bad_options_raise_at_once(world, one):
    with pytest.raises(InvalidOptions):
        check_pdf_revision(one, one, trust_roots=world.roots, validation_time=dt.datetime(2025, 1, 1))
    with pytest.raises(InvalidOptions):
        check_pdf_revision(one, one, trust_roots=[b"not a certificate"])
    with pytest.raises(InvalidOptions):
        check_detached_signature(b"x", b"y", trust_roots=world.roots, revocation="sometimes")


# -- detached CMS


def _cms_refused(v: RevisionVerdict) -> RevisionVerdict:
    assert not v.accepted and v.reason == CMS_INVALID and v.message and "\n" not in v.message, v.message
    return v


def test_detached_cms_over_other_content(world):
    sig = sign_detached(io.BytesIO(b"the locked annex"), world.bob.signer)
    v = _cms_refused(check_detached_signature(b"another annex", sig, trust_roots=world.roots))
    assert "modified" in v.message and v.signer_certificate_der == world.bob.cert


def test_detached_cms_with_two_signers(world):
    content = b"the locked annex"
    a = cms.ContentInfo.load(sign_detached(io.BytesIO(content), world.alice.signer))
    b = cms.ContentInfo.load(sign_detached(io.BytesIO(content), world.bob.signer))
    sd = a["content"].copy()
    sd["signer_infos"] = cms.SignerInfos([a["content"]["signer_infos"][0], b["content"]["signer_infos"][0]])
    sd["certificates"] = cms.CertificateSet([*a["content"]["certificates"], *b["content"]["certificates"]])
    both = cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    assert "2 signers" in _cms_refused(check_detached_signature(content, both, trust_roots=world.roots)).message


def test_detached_cms_untrusted_or_garbage(world, ec_setup, revocation_srv):
    content = b"the locked annex"
    stranger = Party.on_token(ec_setup, minipki.MiniCA("Another Root", revocation_srv), "Bob Token")
    v = _cms_refused(check_detached_signature(content, sign_detached(io.BytesIO(content), stranger.signer),
                                              trust_roots=world.roots))
    assert "trusted root" in v.message
    for bad in (b"", b"not DER at all", cms.ContentInfo({"content_type": "data", "content": b"x"}).dump()):
        assert _cms_refused(check_detached_signature(content, bad, trust_roots=world.roots)).signer_certificate_der \
            is None


def test_attached_cms_is_not_a_detached_signature(world):
    content = b"the locked annex"
    ci = cms.ContentInfo.load(sign_detached(io.BytesIO(content), world.bob.signer))
    sd = ci["content"].copy()
    sd["encap_content_info"] = cms.ContentInfo({"content_type": "data", "content": content})
    attached = cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    assert "encapsulates" in _cms_refused(check_detached_signature(content, attached, trust_roots=world.roots)).message


# -- cost


def test_check_of_a_three_page_contract_is_quick(world, one, two):
    check(world, one, two)  # warm caches (imports, certificate parsing)
    t = time.perf_counter()
    accepted(check(world, one, two))
    assert time.perf_counter() - t < 2.0  # measured ~0.05 s; a generous bound for loaded CI machines


# -- earlier_accepted: the caller accepted ``previous`` itself; only the new signature is validated again


def test_with_earlier_accepted_only_the_new_signature_is_validated(world, one, two):
    v = accepted(check(world, one, two, expected_field="Bob", earlier_accepted=True))
    assert v.field_name == "Bob" and v.signer_certificate_der == world.bob.cert
    assert [s.field_name for s in v.report.signatures] == ["Bob"]  # Alice's was validated when it was accepted


def test_with_earlier_accepted_a_certification_that_permits_no_changes_still_refuses(world):
    certified = writer_sign(world.contract, world.alice, "Alice", certify=True)
    v = refused(check(world, certified, writer_sign(certified, world.bob, "Bob", force=True), earlier_accepted=True),
                REVISION_DISALLOWED_CHANGES)
    assert "earlier signature 1 of 1 does not permit" in v.message


def test_with_earlier_accepted_a_field_lock_of_an_earlier_signature_still_refuses(world, tmp_path):
    """Alice's signature locks every field (FieldMDP /All): Bob's signature fills a field, which it forbids."""
    w = IncrementalPdfFileWriter(io.BytesIO(world.contract))
    fields.append_signature_field(w, fields.SigFieldSpec("Alice", field_mdp_spec=fields.FieldMDPSpec(
        fields.FieldMDPAction.ALL)))
    fields.append_signature_field(w, fields.SigFieldSpec("Bob"))
    out = io.BytesIO()
    w.write(out)
    base = out.getvalue()
    alice = writer_sign(base, world.alice, "Alice")
    bob = writer_sign(alice, world.bob, "Bob", force=True)
    for earlier_accepted in (False, True):  # the verifier's own FieldMDP verdict, and ours from step 7's facts
        v = check(world, alice, bob, earlier_accepted=earlier_accepted)
        assert not v.accepted and v.reason in (REVISION_DISALLOWED_CHANGES, REVISION_EARLIER_SIGNATURE_BROKEN), \
            (earlier_accepted, v.reason, v.message)
    refused(check(world, alice, bob, earlier_accepted=True), REVISION_DISALLOWED_CHANGES)


def test_with_earlier_accepted_every_mutant_gets_the_same_verdict(world, one, two):
    """The mutants of Bob's revision: accepted or refused alike with and without re-validating Alice's."""
    for name, data in mutants.mutants({"two": two[len(one):]}, per_seed=60, seed=5):
        full, quick = check(world, one, one + data), check(world, one, one + data, earlier_accepted=True)
        assert full.accepted == quick.accepted, (name, full.reason, quick.reason)


def test_with_earlier_accepted_structural_refusals_stay(world, one, two):
    refused(check(world, one, two[:len(one) - 10] + two[len(one) - 9:], earlier_accepted=True),
            REVISION_NOT_INCREMENTAL)
    refused(check(world, one, one, earlier_accepted=True), REVISION_NOT_INCREMENTAL)
