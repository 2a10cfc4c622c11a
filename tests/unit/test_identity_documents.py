"""Document number checks: PRC resident ID vectors (GB 11643), other types, safe error messages."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import InvalidArgument
from server.identity.contact import normalise_email, normalise_name, normalise_phone
from server.identity.documents import Document, parse_document

TODAY = date(2030, 1, 1)


def check_char(first17: str) -> str:
    """Independent ISO 7064 MOD 11-2 (as written in GB 11643-1999): sum(a_i * 2^(i-1) mod 11)."""
    total = sum(int(d) * (2 ** (18 - i) % 11) for i, d in enumerate(first17, start=1))
    return "10X98765432"[total % 11]


def prc(number: str) -> Document:
    return parse_document("prc_resident_id", number, TODAY)


def refused(number: str, doc_type: str = "prc_resident_id", country: str | None = None) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        parse_document(doc_type, number, TODAY, country)
    assert number.strip() not in str(info.value) or len(number.strip()) <= 2  # never echoed
    return info.value


@pytest.mark.parametrize("number", ["11010519491231002X", "440524188001010014"])
def test_published_vectors_are_valid(number: str) -> None:
    # both examples are printed in GB 11643-1999
    doc = prc(number)
    assert doc == Document("prc_resident_id", "CN", number)
    assert doc.semantics_identifier() == f"IDCCN-{number}"


def test_normalisation_lowercase_x_spaces_and_fullwidth_digits() -> None:
    assert prc(" 110105 19491231 002x ").number == "11010519491231002X"
    assert prc("１１０１０５１９４９１２３１００２Ｘ").number == "11010519491231002X"


@pytest.mark.parametrize("last", list("0123456789"))
def test_every_wrong_check_character_is_refused(last: str) -> None:
    err = refused("11010519491231002" + last)
    assert "check character" in str(err) and err.reason == "DOCUMENT_INVALID"


def test_bad_birth_dates_are_refused_with_a_correct_check_digit() -> None:
    for body in ("11010519490231002", "11010519491301002", "11010517991231002", "11010520300102002"):
        err = refused(body + check_char(body))
        assert "birth date" in str(err)
    body = "11010520300101002"  # born "today" is possible
    assert prc(body + check_char(body)).number.startswith("110105")


def test_region_length_and_charset() -> None:
    body = "99010519491231002"
    assert "region" in str(refused(body + check_char(body)))
    refused("1101051949123100")  # 16
    refused("11010519491231002XX")
    refused("1101051949123100X2")
    assert "2013" in str(refused("110105491231002"))  # old 15-digit form
    refused("")


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_exactly_one_check_character_fits(body: str) -> None:
    ok = []
    for c in "0123456789X":
        try:
            parse_document("prc_resident_id", body + c, TODAY)
            ok.append(c)
        except InvalidArgument:
            pass
    try:
        date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
        plausible = body[:2] in {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35",
                                 "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54",
                                 "61", "62", "63", "64", "65", "71", "81", "82", "83"} and \
            1800 <= int(body[6:10]) and date(int(body[6:10]), int(body[10:12]), int(body[12:14])) <= TODAY
    except ValueError:
        plausible = False
    assert ok == ([check_char(body)] if plausible else [])


def test_hk_macao_taiwan_residence_permits_use_the_same_rules() -> None:
    body = "81000019900101001"
    assert prc(body + check_char(body)).country == "CN"


def test_other_document_types() -> None:
    assert parse_document("passport", "e12345678", TODAY, "cn") == Document("passport", "CN", "E12345678")
    assert parse_document("passport", "E12345678", TODAY, "CN").semantics_identifier() == "PASCN-E12345678"
    assert "issuing country" in str(refused("E12345678", "passport"))
    refused("E1234", "passport", "CHN")
    refused("E123-45678", "passport", "CN")
    assert parse_document("hk_macao_permit", "H12345678", TODAY).semantics_identifier() is None
    assert parse_document("hk_macao_permit", "M1234567890", TODAY).number == "M1234567890"
    refused("X12345678", "hk_macao_permit")
    refused("H123456789", "hk_macao_permit")
    assert parse_document("tw_permit", "12345678", TODAY).number == "12345678"
    refused("1234567", "tw_permit")
    assert parse_document("national_id", "ab-1234", TODAY, "DE").number == "AB-1234"
    body = "91234519900101001"
    assert parse_document("foreign_permanent_resident", body + check_char(body), TODAY).country == "CN"
    refused(body + ("0" if check_char(body) != "0" else "1"), "foreign_permanent_resident")
    assert parse_document("foreign_permanent_resident", "USA123456789012", TODAY).number == "USA123456789012"
    with pytest.raises(InvalidArgument, match="issued by CN"):
        parse_document("prc_resident_id", "11010519491231002X", TODAY, "US")
    with pytest.raises(InvalidArgument) as info:
        parse_document("driving_licence", "11010519491231002X", TODAY)
    assert info.value.reason == "DOCUMENT_TYPE_UNKNOWN" and "11010519491231002X" not in str(info.value)


def test_document_repr_hides_the_number() -> None:
    doc = prc("11010519491231002X")
    assert "11010519491231002X" not in repr(doc) and "002X" not in repr(doc)
    assert doc.masked() == "**************002X"


def test_contact_fields() -> None:
    assert normalise_phone("+86 138-0013-8000") == "+8613800138000"
    assert normalise_phone("+1 (415) 555-0100") == "+14155550100"
    for bad in ("13800138000", "+0123456789", "+86138001380001234", "+86 138 0013 800a", ""):
        with pytest.raises(InvalidArgument):
            normalise_phone(bad)
    assert normalise_email("Alice@Example.COM") == "Alice@example.com"
    for bad in ("alice", "alice@", "@example.com", "a b@example.com", "alice@example", "alice@-x.com"):
        with pytest.raises(InvalidArgument):
            normalise_email(bad)
    assert normalise_name("  张  三 ") == "张 三"
    for bad in ("", "   ", "a\x00b", "x" * 201):
        with pytest.raises(InvalidArgument):
            normalise_name(bad)


@given(st.sampled_from(["11", "31", "44", "65", "81", "83"]), st.integers(0, 9999),
       st.dates(date(1800, 1, 1), TODAY), st.integers(0, 999))
def test_well_formed_numbers_accept_exactly_their_check_character(province: str, area: int, born: date,
                                                                  seq: int) -> None:
    body = f"{province}{area:04d}{born:%Y%m%d}{seq:03d}"
    accepted = []
    for c in "0123456789X":
        try:
            accepted.append(prc(body + c).number[-1])
        except InvalidArgument:
            pass
    assert accepted == [check_char(body)]
