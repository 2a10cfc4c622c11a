"""The sealer: every completed envelope is sealed, archived and recorded -- once, retried until it is.

The queue is durable without a hand-off: a completed envelope whose ``seal_jobs`` row is not ``sealed`` is
work, so completion needs no extra write and a crash at any point leaves the envelope in the queue.  One pass
(:meth:`Sealer.run_once`, a background loop of ``signet-server run``, woken at every committed change):

1. each document's current revision is sealed -- a PDF to PAdES B-LTA (:mod:`.pdf`), any other file's detached
   signatures countersigned with a timestamp (:mod:`.cms`);
2. the certificate of completion (:mod:`.completion`) is made and sealed the same way;
3. the sealed documents (and for other files the file as sent), the certificate, and the envelope's event log
   (JSON) are put in the encrypted archive (:mod:`server.archive`) under the envelope's organisation;
4. one transaction records what was archived (``sealed_objects``), marks the job ``sealed`` and appends the
   envelope event ``sealed`` (which is also an audit-log leaf).

A seal that fails (TSA or OCSP down, the token busy) leaves the job ``pending`` with its attempt count, the
failure's type and the next attempt time (30 s doubling up to an hour); it is never completed with the local
clock.  A crash between 3 and 4 leaves archived objects that nothing refers to; the job is redone at the next
pass (new timestamps, so new objects), so a half-done seal is redone, never half-recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pyhanko.sign.timestamps import TimeStamper

from formats.signer import TokenSigner

from .. import audit
from ..archive import Archive
from ..blobs import BlobStore
from ..ca.signer import HsmSigner
from ..clock import Clock, from_text
from ..envelopes import events, records
from ..envelopes.model import Envelope, EnvelopeState
from ..envelopes.parties import Parties
from ..errors import NotFound
from ..identity import Person
from ..store import Store
from . import cms, completion, pdf, text

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
RENEW_BEFORE = timedelta(days=90)  # renew an archived PDF's timestamp chain this long before its TSA cert expires
RENEW_EVERY = timedelta(days=30)  # ... and then no more often than this


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE seal_jobs ("
        " envelope_id TEXT PRIMARY KEY,"
        " state TEXT NOT NULL,"  # pending | sealed
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at TEXT,"
        " last_error TEXT NOT NULL DEFAULT '',"
        " sealed_at TEXT)")
    store.execute(
        "CREATE TABLE sealed_objects ("
        " envelope_id TEXT NOT NULL,"
        " kind TEXT NOT NULL,"  # document | original | certificate | events
        " document_id TEXT NOT NULL DEFAULT '',"
        " org TEXT NOT NULL,"
        " sha256 TEXT NOT NULL,"  # the archive object id
        " size INTEGER NOT NULL,"
        " ts_expires_at TEXT,"  # a PDF: when its newest document timestamp's certificate expires
        " renewed INTEGER NOT NULL DEFAULT 0,"  # LTA renewals so far
        " renewed_at TEXT,"  # the last one
        " PRIMARY KEY (envelope_id, kind, document_id))")
    store.execute("CREATE INDEX sealed_objects_expiry ON sealed_objects (ts_expires_at)")


MIGRATIONS = [_v1]


@dataclass(frozen=True)
class SealKey:
    """The seal key on the server token, for PDF (pyHanko) and CMS countersignatures, with its certificates."""

    pdf_signer: TokenSigner
    cms_signer: HsmSigner
    certificates: tuple[bytes, ...]  # the seal certificate, then its chain


@dataclass(frozen=True)
class SealedObject:
    kind: str
    document_id: str
    org: str
    sha256: str
    size: int
    ts_expires_at: datetime | None = None


class Sealer:
    def __init__(self, store: Store, blobs: BlobStore, archive: Archive, parties: Parties, *, key: SealKey,
                 timestamper: Callable[[], TimeStamper], trust_roots: tuple[bytes, ...], clock: Clock,
                 indexer: Callable[[Envelope, list[str]], None] | None = None,
                 after_seal: Callable[[], object] | None = None) -> None:
        """``indexer(envelope, texts)`` runs in the transaction that records the seal (the search index);
        ``after_seal()`` after it committed (a signed audit tree head over the seal's event)."""
        self._indexer = indexer
        self._after_seal = after_seal
        self._store = store
        self._blobs = blobs
        self._archive = archive
        self._parties = parties
        self.key = key
        self._timestamper = timestamper
        self._roots = trust_roots
        self._clock = clock
        store.migrate("seal", MIGRATIONS)
        audit.migrate(store)

    # -- the queue ------------------------------------------------------------------------------------------------
    def due(self, now: datetime, limit: int = 20) -> list[str]:
        rows = self._store.query(
            "SELECT e.id FROM envelopes e LEFT JOIN seal_jobs j ON j.envelope_id = e.id "
            "WHERE e.state = ? AND (j.envelope_id IS NULL OR (j.state = 'pending' AND "
            "(j.next_attempt_at IS NULL OR j.next_attempt_at <= ?))) ORDER BY e.completed_at LIMIT ?",
            (EnvelopeState.COMPLETED.value, records.text(now), limit))
        return [str(r["id"]) for r in rows]

    def run_once(self) -> int:
        """Seal every envelope that is due; returns how many were sealed."""
        done = 0
        for envelope_id in self.due(self._clock.now()):
            try:
                self.seal(envelope_id)
                done += 1
            except pdf.SealFailed as e:
                self._failed(envelope_id, e)
        return done

    def job(self, envelope_id: str) -> dict[str, Any] | None:
        return self._store.query_one("SELECT * FROM seal_jobs WHERE envelope_id = ?", (envelope_id,))

    def objects(self, envelope_id: str) -> list[SealedObject]:
        rows = self._store.query("SELECT * FROM sealed_objects WHERE envelope_id = ? ORDER BY kind, document_id",
                                 (envelope_id,))
        return [_object(r) for r in rows]

    # -- LTA renewal ----------------------------------------------------------------------------------------------
    def renewals_due(self, now: datetime, limit: int = 20) -> list[tuple[str, SealedObject]]:
        rows = self._store.query("SELECT * FROM sealed_objects WHERE ts_expires_at IS NOT NULL AND ts_expires_at <= ? "
                                 "AND (renewed_at IS NULL OR renewed_at <= ?) ORDER BY ts_expires_at LIMIT ?",
                                 (records.text(now + RENEW_BEFORE), records.text(now - RENEW_EVERY), limit))
        return [(str(r["envelope_id"]), _object(r)) for r in rows]

    def renew_once(self) -> int:
        """Renew the timestamp chain of every archived PDF whose newest document timestamp's certificate expires
        within ``RENEW_BEFORE`` (then at most every ``RENEW_EVERY``): fresh validation data and a new document
        timestamp, stored as a new archive object that the envelope's record then points at (the earlier one stays,
        write-once); returns how many.  A renewal whose new timestamp expires no later than the old one (the TSA's
        own certificate is the limit) is still stored, and logged as an error: the TSA certificate must be renewed
        before it expires or the chain ends there."""
        done = 0
        for envelope_id, o in self.renewals_due(self._clock.now()):
            try:
                renewed = pdf.renew_lta(self._archive.get(o.org, o.sha256), self._timestamper(), self._roots)
            except pdf.SealFailed as e:
                log.warning("envelope %s: LTA renewal of its %s failed (%s); retried at the next pass", envelope_id,
                            o.kind, e)
                continue
            sha = self._archive.put(o.org, renewed)
            expires = pdf.last_timestamp_expiry(renewed)
            now = records.ms(self._clock.now())
            if expires is not None and o.ts_expires_at is not None and expires <= o.ts_expires_at:
                log.error("envelope %s: the TSA certificate expires at %s, no later than the timestamp it renews: "
                          "renew the TSA certificate before then", envelope_id, expires)
            with self._store.transaction():
                self._store.execute("UPDATE sealed_objects SET sha256 = ?, size = ?, ts_expires_at = ?, "
                                    "renewed = renewed + 1, renewed_at = ? WHERE envelope_id = ? AND kind = ? AND "
                                    "document_id = ? AND sha256 = ?",
                                    (sha, len(renewed), records.text(expires), records.text(now), envelope_id,
                                     o.kind, o.document_id, o.sha256))
                audit.append(self._store, "archive.lta_renewed", envelope_id, {
                    "kind": o.kind, "document_id": o.document_id, "org": o.org, "previous": o.sha256,
                    "archived": sha, "timestamp_expires_at": records.text(expires)}, now)
            done += 1
            log.info("envelope %s: %s re-timestamped (LTA renewal), archived as %s", envelope_id, o.kind, sha)
        return done

    def run_once_all(self) -> int:
        """One background pass: seal what is due, then renew what is due."""
        return self.run_once() + self.renew_once()

    def _failed(self, envelope_id: str, e: Exception) -> None:
        now = self._clock.now()
        with self._store.transaction():
            job = self.job(envelope_id)
            attempts = int(job["attempts"]) + 1 if job else 1
            wait = min(FIRST_RETRY * 2 ** (attempts - 1), MAX_RETRY)
            row = {"envelope_id": envelope_id, "state": "pending", "attempts": attempts,
                   "next_attempt_at": records.text(now + wait), "last_error": str(e)[:300]}
            if job is None:
                self._store.insert("seal_jobs", row)
            else:
                self._store.execute("UPDATE seal_jobs SET attempts = ?, next_attempt_at = ?, last_error = ? "
                                    "WHERE envelope_id = ?", (attempts, row["next_attempt_at"], row["last_error"],
                                                              envelope_id))
        log.warning("envelope %s: seal attempt %d failed (%s); next attempt in %s", envelope_id, attempts, e, wait)

    # -- one envelope ---------------------------------------------------------------------------------------------
    def seal(self, envelope_id: str) -> list[SealedObject]:
        env = records.load(self._store, envelope_id)
        if env is None:
            raise NotFound(f"no envelope {envelope_id!r}", reason="ENVELOPE_NOT_FOUND")
        job = self.job(envelope_id)
        if job is not None and job["state"] == "sealed":
            return self.objects(envelope_id)
        now = records.ms(self._clock.now())
        made = self._make(env, now)
        if not self._record(env, made, now):
            return self.objects(envelope_id)  # another pass got there first
        log.info("envelope %s sealed and archived: %d object(s)", envelope_id, len(made.archived))
        if self._after_seal is not None:
            try:
                self._after_seal()
            except Exception as e:  # noqa: BLE001 - the seal is recorded; the periodic head covers it instead
                log.warning("envelope %s: no tree head signed after its seal (%s)", envelope_id, type(e).__name__)
        return made.archived

    def _make(self, env: Envelope, now: datetime) -> _Made:
        """Seal every document and the certificate, and put them and the event log in the archive."""
        made = _Made()

        def keep(kind: str, document_id: str, data: bytes, is_pdf: bool = False) -> None:
            sha = self._archive.put(env.org_id, data)
            made.archived.append(SealedObject(kind, document_id, env.org_id, sha, len(data),
                                              pdf.last_timestamp_expiry(data) if is_pdf else None))

        revisions = {d.id: records.revisions(self._store, d.id) for d in env.documents}
        for d in env.documents:
            current = self._blobs.get(d.current_sha256, org=env.org_id)
            if d.is_pdf:
                sealed = pdf.seal_pdf(current, self.key.pdf_signer, self._timestamper(), self._roots)
            else:
                keep("original", d.id, current)
                sealed = _bundle([cms.countersign(self._blobs.get(r.sha256, org=env.org_id), self.key.cms_signer,
                                                  self.key.certificates, self._timestamper(), now)
                                  for r in revisions[d.id] if r.kind == "detached"])
            made.texts.append(text.document_text(sealed if d.is_pdf else current, d.media_type))
            made.documents.append(completion.SealedDocument(d.id, d.original_sha256, d.current_sha256,
                                                            hashlib.sha256(sealed).hexdigest()))
            keep("document", d.id, sealed, d.is_pdf)
        certificate = completion.certificate_pdf(env, self._people(env), made.documents, revisions, now)
        keep("certificate", "", pdf.seal_pdf(certificate, self.key.pdf_signer, self._timestamper(), self._roots),
             True)
        keep("events", "", event_log(self._store, env))
        return made

    def _people(self, env: Envelope) -> dict[str, Person]:
        people = {}
        for r in env.recipients:
            try:
                people[r.person_id] = self._parties.person(r.person_id)
            except NotFound:
                pass
        return people

    def _record(self, env: Envelope, made: _Made, now: datetime) -> bool:
        """One transaction: the archived objects, the job sealed, the search index, the ``sealed`` event;
        False when another pass recorded the seal first."""
        with self._store.transaction():
            job = self.job(env.id)
            if job is not None and job["state"] == "sealed":
                return False
            for o in made.archived:
                self._store.execute("DELETE FROM sealed_objects WHERE envelope_id = ? AND kind = ? AND "
                                    "document_id = ?", (env.id, o.kind, o.document_id))
                self._store.insert("sealed_objects", {"envelope_id": env.id, "kind": o.kind,
                                                      "document_id": o.document_id, "org": o.org,
                                                      "sha256": o.sha256, "size": o.size,
                                                      "ts_expires_at": records.text(o.ts_expires_at)})
            if job is None:
                self._store.insert("seal_jobs", {"envelope_id": env.id, "state": "sealed",
                                                 "attempts": 1, "sealed_at": records.text(now)})
            else:
                self._store.execute("UPDATE seal_jobs SET state = 'sealed', attempts = attempts + 1, "
                                    "sealed_at = ?, last_error = '' WHERE envelope_id = ?",
                                    (records.text(now), env.id))
            if self._indexer is not None:
                self._indexer(env, made.texts)
            events.append(self._store, env.id, "sealed", "server", now, {
                "documents": {s.document_id: s.sealed_sha256 for s in made.documents},
                "archived": {f"{o.kind}:{o.document_id}" if o.document_id else o.kind: o.sha256
                             for o in made.archived}})
        return True


@dataclass
class _Made:
    archived: list[SealedObject] = field(default_factory=list)
    documents: list[completion.SealedDocument] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _object(r: dict[str, Any]) -> SealedObject:
    return SealedObject(r["kind"], r["document_id"], r["org"], r["sha256"], int(r["size"]),
                        from_text(r["ts_expires_at"]) if r.get("ts_expires_at") else None)


def _bundle(parts: list[bytes]) -> bytes:
    """Several countersigned CMS signatures of one file as one archive object: a JSON list of base64 DER."""
    return json.dumps({"format": "signet-cades-set-1",
                       "signatures": [base64.b64encode(p).decode("ascii") for p in parts]}).encode("utf-8")


def event_log(store: Store, env: Envelope) -> bytes:
    """The envelope's events as UTF-8 JSON lines (what the evidence bundle carries)."""
    out = []
    after = 0
    while True:
        page = events.after(store, env.id, after, 500)
        if not page:
            break
        for e in page:
            out.append(json.dumps({"id": e.id, "type": e.type, "actor": e.actor, "at": records.text(e.at),
                                   "detail": dict(e.detail)}, ensure_ascii=False, sort_keys=True))
        after = page[-1].id
    return ("\n".join(out) + "\n").encode("utf-8")
