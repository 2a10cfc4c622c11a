"""Sealed contracts for the people and operators who may see them: search, summary, files, evidence bundle.

Authorisation follows the envelopes (:mod:`server.envelopes.access`): an operator sees every contract of its
organisation; a person only those they sent or were addressed, and their searches are always restricted to
them (the index's party filter, a keyed hash of their person id).  Anything else is NOT_FOUND, like an id that
does not exist; a contract not sealed yet is FAILED_PRECONDITION ``NOT_SEALED``.

The index (:mod:`server.search`) is filled by the sealer when a contract is archived (:meth:`Contracts.index`):
the title, the parties' legal names, the tags and the documents' text (``pdftotext`` of each sealed PDF, the
bytes of a text file), under the organisation's blind-index key.  Downloads and exports are audit-log leaves
(``contract.downloaded``, ``evidence.exported``) naming the caller and the file, never its content.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from . import audit
from .archive import Archive
from .clock import Clock, from_text
from .envelopes import records
from .envelopes.access import access, actor
from .envelopes.model import Envelope
from .errors import FailedPrecondition, InvalidArgument, NotFound
from .identity import Principal
from .keys import ServerKeys
from .seal import evidence, export
from .seal.sealer import Sealer
from .search import BlindIndex
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    envelope: Envelope
    sealed_at: datetime | None
    score: float = 0.0

    @property
    def parties(self) -> list[str]:
        names = [self.envelope.sender_name]
        names += [r.legal_name for r in sorted(self.envelope.recipients, key=lambda r: (r.routing_order, r.id))]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Found:
    contracts: list[Summary]
    total: int
    next_page_token: str


def index_contract(index: BlindIndex, env: Envelope, texts: list[str]) -> None:
    """Put a sealed contract in the search index (the sealer calls it in the transaction recording the seal)."""
    parties = [env.sender_person_id, *(r.person_id for r in env.recipients)]
    index.add(env.org_id, env.id, {
        "title": env.title, "parties": " ".join(Summary(env, None).parties), "tags": " ".join(env.tags),
        "text": "\n".join(texts)}, list(dict.fromkeys(parties)), env.state.value,
        env.completed_at or env.created_at)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument("page_token is not one this server gave out") from e
    if offset < 0:
        raise InvalidArgument("page_token is not one this server gave out")
    return offset


class Contracts:
    def __init__(self, store: Store, archive: Archive, index: BlindIndex, sealer: Sealer, keys: ServerKeys,
                 clock: Clock) -> None:
        self._store = store
        self._archive = archive
        self._index = index
        self._sealer = sealer
        self._keys = keys
        self._clock = clock

    # -- reading --------------------------------------------------------------------------------------------------
    def _sealed_at(self, envelope_id: str) -> datetime | None:
        job = self._sealer.job(envelope_id)
        return from_text(job["sealed_at"]) if job and job["state"] == "sealed" and job["sealed_at"] \
            else None

    def _visible(self, p: Principal, envelope_id: str) -> Envelope:
        env = access(p, records.load(self._store, envelope_id), envelope_id).envelope
        if self._sealed_at(env.id) is None:
            raise FailedPrecondition(f"contract {env.id} is {env.state.value} and not sealed (yet)",
                                     reason="NOT_SEALED")
        return env

    def search(self, p: Principal, query: str, *, party: str = "", completed_from: datetime | None = None,
               completed_to: datetime | None = None, order: str = "relevance", page_size: int = 0,
               page_token: str = "") -> Found:
        if not p.is_operator:
            if party and party != p.subject:
                raise InvalidArgument("a person searches their own contracts only: leave party_person_id empty "
                                      "or name yourself")
            party = p.subject
        if order not in ("relevance", "date", ""):
            raise InvalidArgument("order is 'relevance' or 'date'")
        size = page_size or 20
        if not 1 <= size <= 100:
            raise InvalidArgument("page_size must be between 1 and 100")
        offset = _offset(page_token)
        page = self._index.search(p.org_id, query, party=party or None, date_from=completed_from,
                                  date_to=completed_to, order="date" if order == "date" else "relevance",
                                  limit=size, offset=offset)
        found = []
        for envelope_id, score in page.results:
            env = records.load(self._store, envelope_id)
            if env is not None and env.org_id == p.org_id:
                found.append(Summary(env, self._sealed_at(envelope_id), score))
        return Found(found, page.total, _token(page.next) if page.next is not None else "")

    def get(self, p: Principal, envelope_id: str) -> tuple[Summary, list[export.ExportedFile]]:
        env = self._visible(p, envelope_id)
        files = [f for f, _ in export.files(self._store, self._archive, env.id)]
        return Summary(env, self._sealed_at(env.id)), files

    def download(self, p: Principal, envelope_id: str, name: str) -> tuple[export.ExportedFile, bytes]:
        env = self._visible(p, envelope_id)
        for f, data in export.files(self._store, self._archive, env.id):
            if f.name == name:
                audit.append(self._store, "contract.downloaded", env.id,
                             {"actor": actor(p), "file": f.name, "sha256": f.sha256}, self._clock.now())
                return f, data
        raise NotFound(f"contract {env.id} has no file {name!r}", reason="FILE_NOT_FOUND")

    def export_evidence(self, p: Principal, envelope_id: str) -> evidence.Bundle:
        env = self._visible(p, envelope_id)
        return evidence.build(self._store, self._archive, self._keys, self._sealer.key, env.id, actor=actor(p),
                              now=self._clock.now())
