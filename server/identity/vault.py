"""Identity documents at rest: the number sealed (AES-256-GCM, bound to organisation, person and document type)
and a keyed hash of it for duplicate detection and lookup.  The one place a document number is encrypted or
decrypted; it is never logged nor put in a message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sealing import SecretBox, derive_key, keyed_hash
from .documents import Document


class DocumentVault:
    def __init__(self, box: SecretBox, hmac_key: bytes) -> None:
        self._box = box
        self._key = derive_key(hmac_key, "identity/document")

    def lookup_hash(self, doc: Document) -> str:
        return keyed_hash(self._key, doc.type, doc.country, doc.number)

    @staticmethod
    def _aad(org_id: str, person_id: str, doc_type: str, country: str) -> bytes:
        return "\x00".join(("signet/identity/document/v1", org_id, person_id, doc_type, country)).encode()

    def seal(self, org_id: str, person_id: str, doc: Document) -> bytes:
        return self._box.encrypt(doc.number.encode(), self._aad(org_id, person_id, doc.type, doc.country))

    def number(self, row: Mapping[str, Any]) -> str:
        """The decrypted document number of a person row."""
        aad = self._aad(row["org_id"], row["id"], row["doc_type"], row["doc_country"])
        return self._box.decrypt(bytes(row["doc_sealed"]), aad).decode()
