"""Form fields assigned to signers (formats.formfields): placed empty as one incremental update, filled in the
signer's own signature revision, judged by formats.revision (changed_fields, foreign fields, required fields)."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from formats import InvalidOptions
from formats.formfields import (
    FormField,
    add_form_fields,
    check_value,
    fill_form_fields,
    form_field_values,
    replace_form_fields,
)
from formats.revision import (
    REVISION_FIELD_VALUE_INVALID,
    REVISION_FOREIGN_FIELD,
    REVISION_REQUIRED_FIELD_EMPTY,
)

from .test_revision import World, accepted, agent_sign, check, refused, writer_sign

ALICE = {"alice_name": "text", "alice_date": "date"}
BOB = {"bob_agree": "checkbox"}
SPECS = [FormField("alice_name", "text", 0, (56, 600, 300, 620)),
         FormField("alice_date", "date", 0, (320, 600, 420, 620)),
         FormField("bob_agree", "checkbox", 1, (56, 600, 70, 614))]


@pytest.fixture(scope="module")
def world(revocation_srv, rsa_setup, ec_setup) -> World:
    return World(revocation_srv, rsa_setup, ec_setup)


@pytest.fixture(scope="module")
def placed(world) -> bytes:
    return add_form_fields(world.contract, SPECS)


def test_fields_are_placed_empty_as_an_incremental_update(world, placed):
    assert placed.startswith(world.contract)
    assert PdfFileReader(io.BytesIO(placed)).xrefs.total_revisions == 2
    assert form_field_values(placed) == {"alice_name": "", "alice_date": "", "bob_agree": "no"}
    with pytest.raises(InvalidOptions, match="already"):
        add_form_fields(placed, [FormField("alice_name", "text", 0, (1, 1, 20, 20))])
    with pytest.raises(InvalidOptions, match="page 9"):
        add_form_fields(world.contract, [FormField("x", "text", 8, (1, 1, 20, 20))])


def test_fields_are_taken_out_and_placed_again_as_one_more_incremental_update(world, placed, tmp_path):
    moved = replace_form_fields(placed, ["alice_date", "bob_agree"],
                                [FormField("alice_date", "date", 1, (100, 100, 200, 124))])
    assert moved.startswith(placed) and PdfFileReader(io.BytesIO(moved)).xrefs.total_revisions == 3
    reader = PdfFileReader(io.BytesIO(moved))
    kids = reader.root["/Pages"]["/Kids"]
    on_pages = {str(a.get_object()["/T"]): n for n in range(len(kids)) for a in kids[n].get("/Annots", [])}
    assert on_pages == {"alice_name": 0, "alice_date": 1}  # bob_agree off its page too, alice_date on page 2
    assert form_field_values(moved) == {"alice_name": "", "alice_date": ""}
    assert replace_form_fields(moved, [], []) == moved
    with pytest.raises(InvalidOptions, match="no form field 'bob_agree'"):
        replace_form_fields(moved, ["bob_agree"], [])
    alice = agent_sign(moved, world.alice, "signet-a", tmp_path, form_values={"alice_date": "2026-11-30"})
    v = accepted(check(world, moved, alice, expected_field="signet-a", assigned_fields=ALICE))
    assert v.changed_fields == {"signet-a", "alice_date"}


def test_own_fields_filled_with_the_signature_are_accepted(world, placed, tmp_path):
    alice = agent_sign(placed, world.alice, "signet-a", tmp_path,
                       form_values={"alice_name": "Alice Example", "alice_date": "2026-11-30"})
    v = accepted(check(world, placed, alice, expected_field="signet-a", assigned_fields=ALICE,
                       required_fields=["alice_name"]))
    assert v.changed_fields == {"signet-a", "alice_name", "alice_date"}
    assert form_field_values(alice) == {"alice_name": "Alice Example", "alice_date": "2026-11-30", "bob_agree": "no"}
    bob = agent_sign(alice, world.bob, "signet-b", tmp_path, form_values={"bob_agree": "yes"})
    v = accepted(check(world, alice, bob, expected_field="signet-b", assigned_fields=BOB,
                       required_fields=["bob_agree"]))
    assert v.changed_fields == {"signet-b", "bob_agree"}
    assert form_field_values(bob)["bob_agree"] == "yes"
    assert all(s.ok for s in v.report.signatures)  # Alice's signature still valid after Bob's form filling


def test_filling_another_signers_field_is_refused(world, placed, tmp_path):
    alice = agent_sign(placed, world.alice, "signet-a", tmp_path, form_values={"alice_name": "Alice Example"})
    mallory = agent_sign(alice, world.bob, "signet-b", tmp_path, form_values={"alice_date": "2020-01-01"})
    v = refused(check(world, alice, mallory, expected_field="signet-b", assigned_fields=BOB), REVISION_FOREIGN_FIELD)
    assert "alice_date" in v.message
    # without assignments (formats alone) it is plain form filling
    accepted(check(world, alice, mallory, expected_field="signet-b"))


def test_required_field_left_empty_is_refused(world, placed, tmp_path):
    alice = agent_sign(placed, world.alice, "signet-a", tmp_path, form_values={"alice_date": "2026-11-30"})
    refused(check(world, placed, alice, assigned_fields=ALICE, required_fields=["alice_name"]),
            REVISION_REQUIRED_FIELD_EMPTY)
    bob = agent_sign(alice, world.bob, "signet-b", tmp_path)  # checkbox left unchecked
    refused(check(world, alice, bob, assigned_fields=BOB, required_fields=["bob_agree"]), REVISION_REQUIRED_FIELD_EMPTY)


def test_a_date_field_holding_no_date_is_refused(world, placed):
    def fill(w: IncrementalPdfFileWriter) -> None:  # not through fill_form_fields, which would refuse the value
        from pyhanko.pdf_utils.form_tools import populate_static_text_field
        from pyhanko.pdf_utils.text import TextBoxStyle
        populate_static_text_field(w, "alice_date", TextBoxStyle(), "next tuesday")

    new = writer_sign(placed, world.alice, "signet-a", fill)
    refused(check(world, placed, new, assigned_fields=ALICE), REVISION_FIELD_VALUE_INVALID)


def test_values_are_checked_before_filling(placed):
    assert check_value("checkbox", "Yes") == "yes" and check_value("checkbox", "") == "no"
    assert check_value("date", "2026-02-28") == "2026-02-28"
    for kind, value in [("date", "2026-02-30"), ("date", "28.02.2026"), ("checkbox", "maybe"), ("text", "a\nb")]:
        with pytest.raises(InvalidOptions):
            check_value(kind, value)
    w = IncrementalPdfFileWriter(io.BytesIO(placed))
    with pytest.raises(InvalidOptions, match="no form field"):
        fill_form_fields(w, {"nobody": "x"})
