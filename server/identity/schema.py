"""Identity tables, registered with ``store.migrate("identity", MIGRATIONS)``.

The document number is stored only as ``doc_sealed`` (SecretBox ciphertext bound to the person
row) and ``doc_hash`` (keyed HMAC for duplicate detection and lookup; unique per organisation).
"""

from __future__ import annotations

from ..store import Store


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE identity_organisations ("
        " id TEXT PRIMARY KEY,"
        " name TEXT NOT NULL UNIQUE,"
        " created_at TEXT NOT NULL)"
    )
    store.execute(
        "CREATE TABLE identity_people ("
        " id TEXT PRIMARY KEY,"
        " org_id TEXT NOT NULL REFERENCES identity_organisations (id),"
        " legal_name TEXT NOT NULL,"
        " doc_type TEXT NOT NULL,"
        " doc_country TEXT NOT NULL,"
        " doc_sealed BLOB NOT NULL,"
        " doc_hash TEXT NOT NULL,"
        " phone TEXT NOT NULL,"
        " email TEXT NOT NULL,"
        " status TEXT NOT NULL,"  # pending | approved | rejected
        " phone_verified_at TEXT,"
        " phone_verified_code_id TEXT,"
        " decided_at TEXT,"
        " created_at TEXT NOT NULL,"
        " created_by TEXT NOT NULL,"
        " evidence_head TEXT NOT NULL DEFAULT '',"  # digest of the last evidence record: detects truncation
        " UNIQUE (org_id, doc_hash))"
    )
    store.execute("CREATE INDEX identity_people_org ON identity_people (org_id, created_at)")
    store.execute(
        "CREATE TABLE identity_evidence ("
        " person_id TEXT NOT NULL REFERENCES identity_people (id),"
        " seq INTEGER NOT NULL,"
        " org_id TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " at TEXT NOT NULL,"
        " actor TEXT NOT NULL,"
        " provider TEXT NOT NULL,"
        " reference TEXT NOT NULL,"
        " detail TEXT NOT NULL,"
        " prev_digest TEXT NOT NULL,"
        " digest TEXT NOT NULL,"
        " PRIMARY KEY (person_id, seq))"
    )


MIGRATIONS = [_v1]
