"""Checks for the person's name, phone number (E.164) and e-mail address."""

from __future__ import annotations

import re
import unicodedata

from ..errors import InvalidArgument

_E164 = re.compile(r"\+[1-9]\d{6,14}")  # ITU-T E.164: at most 15 digits after the plus
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


def normalise_phone(raw: str) -> str:
    """``+86 138-0013-8000`` -> ``+8613800138000``; raises :class:`InvalidArgument` if not E.164."""
    phone = re.sub(r"[\s().-]", "", unicodedata.normalize("NFKC", raw))
    if not _E164.fullmatch(phone):
        raise InvalidArgument("the phone number must be in international E.164 form, e.g. +8613800138000",
                              reason="PHONE_INVALID")
    return phone


def normalise_email(raw: str) -> str:
    email = raw.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InvalidArgument("the e-mail address is not valid", reason="EMAIL_INVALID")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise_name(raw: str) -> str:
    """The legal name as written on the document (NFC, single spaces); at most 200 characters."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        raise InvalidArgument("the legal name is empty", reason="NAME_INVALID")
    if len(name) > 200 or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidArgument("the legal name is too long or contains control characters", reason="NAME_INVALID")
    return name
