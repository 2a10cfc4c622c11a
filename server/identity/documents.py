"""Identity documents: the types Signet accepts and how each number is checked.

Numbers are normalised first (Unicode NFKC, so full-width digits typed with a CJK input method
become ASCII; whitespace removed; letters upper-cased).  Error messages say what is wrong and
never echo the number.

=============================  =======  ==============================================================
type                           country  rule
=============================  =======  ==============================================================
``prc_resident_id``            CN       18 characters: 6-digit region code (province prefix one of
                                        11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81-83; 81/82/83
                                        are the residence permits of Hong Kong, Macao and Taiwan
                                        residents), birth date YYYYMMDD (a real date, 1800 or later,
                                        not in the future), 3-digit sequence, and the ISO 7064
                                        MOD 11-2 check character (0-9 or X).  15-digit numbers
                                        (withdrawn in 2013) are refused.
``foreign_permanent_resident``  CN      PRC Foreign Permanent Resident ID Card: the 2023 form is 18
                                        characters starting with 9 with the MOD 11-2 check
                                        character; the 2017 form is 3 letters + 12 digits.
``hk_macao_permit``            CN       Mainland Travel Permit for HK/Macao residents: H or M, then
                                        8 or 10 digits.
``tw_permit``                  CN       Mainland Travel Permit for Taiwan residents: 8 digits.
``passport``                   any      issuing country (ISO 3166-1 alpha-2) required; 5-20 letters
                                        or digits (ICAO 9303 document numbers, with room for longer
                                        national forms).
``national_id``                any      other national identity cards: issuing country required;
                                        4-32 letters, digits or hyphens, starting with a letter or digit.
=============================  =======  ==============================================================

``etsi_type`` is the ETSI EN 319 412-1 §5.1.3 semantics identifier type (``IDC``, ``PAS``) the CA
uses for the certificate serialNumber (``IDCCN-<number>``); types without one get a pseudonymous
identifier by policy.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from ..errors import InvalidArgument

_PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82", "83",
})
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_CHECK = "10X98765432"
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="DOCUMENT_INVALID")


def mod11_2_check(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _check_prc_resident_id(number: str, today: date) -> None:
    if len(number) == 15 and number.isdigit():
        raise _invalid("15-digit PRC resident identity numbers were withdrawn in 2013; give the 18-character number")
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise _invalid("a PRC resident identity number has 17 digits followed by a digit or X")
    if number[:2] not in _PROVINCES:
        raise _invalid("the PRC resident identity number's region code is not a known province")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise _invalid("the PRC resident identity number's birth date is not a real date") from None
    if born.year < 1800 or born > today:
        raise _invalid("the PRC resident identity number's birth date is impossible (before 1800 or in the future)")
    if mod11_2_check(number[:17]) != number[17]:
        raise _invalid("the PRC resident identity number's check character is wrong (ISO 7064 MOD 11-2)")


def _check_foreign_permanent_resident(number: str, today: date) -> None:
    if re.fullmatch(r"[A-Z]{3}\d{12}", number):
        return
    if len(number) == 18 and number[0] == "9" and number[:17].isdigit():
        if mod11_2_check(number[:17]) != number[17]:
            raise _invalid("the permanent resident ID number's check character is wrong (ISO 7064 MOD 11-2)")
        return
    raise _invalid("a foreign permanent resident ID number is 18 characters starting with 9, or 3 letters + 12 digits")


def _pattern(regex: str, what: str) -> Callable[[str, date], None]:
    compiled = re.compile(regex)

    def check(number: str, today: date) -> None:
        if not compiled.fullmatch(number):
            raise _invalid(f"the {what} number does not have the expected format")

    return check


@dataclass(frozen=True)
class DocumentType:
    code: str
    title: str
    check: Callable[[str, date], None] = field(repr=False)
    country: str | None = None  # fixed issuing country, or None when the caller must give one
    etsi_type: str | None = None


DOCUMENT_TYPES: dict[str, DocumentType] = {t.code: t for t in (
    DocumentType("prc_resident_id", "PRC resident identity card", _check_prc_resident_id, "CN", "IDC"),
    DocumentType("foreign_permanent_resident", "PRC foreign permanent resident ID card",
                 _check_foreign_permanent_resident, "CN", None),
    DocumentType("hk_macao_permit", "Mainland travel permit for Hong Kong and Macao residents",
                 _pattern(r"[HM](\d{8}|\d{10})", "Hong Kong/Macao travel permit"), "CN", None),
    DocumentType("tw_permit", "Mainland travel permit for Taiwan residents",
                 _pattern(r"\d{8}", "Taiwan travel permit"), "CN", None),
    DocumentType("passport", "Passport", _pattern(r"[A-Z0-9]{5,20}", "passport"), None, "PAS"),
    DocumentType("national_id", "National identity card",
                 _pattern(r"[A-Z0-9][A-Z0-9-]{3,31}", "identity card"), None, "IDC"),
)}


@dataclass(frozen=True)
class Document:
    """A checked, normalised document; ``number`` never appears in ``repr``."""

    type: str
    country: str
    number: str = field(repr=False)

    def semantics_identifier(self) -> str | None:
        """ETSI EN 319 412-1 natural-person identifier, e.g. ``IDCCN-11010519491231002X``."""
        etsi = DOCUMENT_TYPES[self.type].etsi_type
        return f"{etsi}{self.country}-{self.number}" if etsi else None

    def masked(self) -> str:
        """For display to the document's holder and operators: the last 4 characters only."""
        return "*" * max(0, len(self.number) - 4) + self.number[-4:]


def normalise_number(raw: str) -> str:
    return "".join(unicodedata.normalize("NFKC", raw).split()).upper()


def parse_document(doc_type: str, number: str, today: date, country: str | None = None) -> Document:
    """Check and normalise; raises :class:`InvalidArgument` (reason DOCUMENT_INVALID) with a safe message."""
    dtype = DOCUMENT_TYPES.get(doc_type)
    if dtype is None:
        raise InvalidArgument(f"unknown identity document type {doc_type!r}; known: {', '.join(DOCUMENT_TYPES)}",
                              reason="DOCUMENT_TYPE_UNKNOWN")
    given_country = (country or "").strip().upper() or None
    if dtype.country is not None:
        if given_country not in (None, dtype.country):
            raise _invalid(f"a {dtype.title} is issued by {dtype.country}, not {given_country}")
        issuer = dtype.country
    else:
        if given_country is None or not _COUNTRY.fullmatch(given_country):
            raise _invalid(f"a {dtype.title} needs its issuing country as an ISO 3166-1 alpha-2 code")
        issuer = given_country
    normalised = normalise_number(number)
    if not normalised:
        raise _invalid("the document number is empty")
    dtype.check(normalised, today)
    return Document(dtype.code, issuer, normalised)
