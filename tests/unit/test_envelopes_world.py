"""The world of the envelope unit tests (imported by every tests/unit/test_envelopes_*.py), and its own checks.

Real parts only: an SQLite store in tmp_path, the real IdentityService (people registered, phone codes read from
the outbox and entered, approved by a second operator), the outbox as the notifier (envelope notices are queued
and reach it when a test runs the dispatcher's pass, ``w.deliver()``), a ManualClock, a file blob store, and a
Signet-shaped signing hierarchy (tests.formats.minipki: the root carries the Signet marker and policies) whose
signer certificates are recorded in the server's own CA tables for their persons.  Signatures are made the agent's
way (formats.sign_pdf / sign_detached) with software keys behind the token interface: the
unit tests are about the server's bookkeeping; real tokens sign in tests/e2e/test_envelopes.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization

from formats import PdfSignOptions, TokenSigner, sign_detached, sign_pdf
from formats.policy import DEFAULT_REMOTE_POLICY, DEFAULT_SIGNING_POLICY, SIGNING_ROOT_MARKER
from formats.samplepdf import contract_pdf_bytes
from server.blobs import FileBlobStore
from server.ca import db
from server.clock import ManualClock
from server.envelopes import (
    DocumentInput,
    Envelope,
    EnvelopeService,
    Limits,
    RecipientInput,
    RecipientRole,
    SignatureField,
    SigningMethod,
    SigningRules,
    Tuning,
)
from server.identity import IdentityService, Person, Principal, Role
from server.notify import OutboxChannel, Router
from server.notify.message import AddressKind, Channel
from server.otp import OtpPolicy
from server.sealing import AesGcmBox
from server.store import Store
from tests.conftest import store_for_test
from tests.formats import minipki

ANY_POLICY = "2.5.29.32.0"
CONTRACT = contract_pdf_bytes("Envelope Unit Agreement", ["Alice Envelope", "Bob Envelope"], pages=3)
DOCS = {"alice": "11010519491231002X", "bob": "440524188001010014", "carol": "110105198808083216",
        "dave": "110105199202290469", "erin": "110105197903151120"}
PHONES = {n: f"+86138001380{i:02d}" for i, n in enumerate(DOCS, 10)}


@dataclass
class Signer:
    """A person's signing key (software, behind the token interface) and its certificate from our signing CA."""

    person: Person
    cert: bytes
    token: minipki.SoftToken

    chain: tuple[bytes, ...] = ()

    def signer(self) -> TokenSigner:
        return TokenSigner(self.token, "k", certificate=self.cert, chain=self.chain)

    @property
    def serial(self) -> str:
        return format(cx509.load_der_x509_certificate(self.cert).serial_number, "x")


@dataclass
class World:
    tmp: Path
    store: Store
    clock: ManualClock
    outbox: OutboxChannel
    identity: IdentityService
    blobs: FileBlobStore
    svc: EnvelopeService
    root: minipki.MiniCA
    ca: minipki.MiniCA
    rules: SigningRules
    acme_op: Principal
    other_op: Principal
    people: dict[str, Person] = field(default_factory=dict)
    signers: dict[str, Signer] = field(default_factory=dict)
    last_code: str = ""
    notifier: Channel | None = None
    tuning: Tuning | None = None

    def restart(self, notifier: Channel | None = None) -> EnvelopeService:
        """A new EnvelopeService on the same store, blobs and clock, as after a restart of the server (the old
        one is dropped mid-way: nothing of it runs any more); it becomes ``self.svc``."""
        self.svc = EnvelopeService(self.store, self.blobs, self.identity, notifier or self.notifier or self.outbox,
                                   rules=self.rules, clock=self.clock, limits=self.svc.limits, tuning=self.tuning)
        return self.svc

    def me(self, name: str) -> Principal:
        """A person calling through their agent (role agent, subject = person id)."""
        p = self.people[name]
        return Principal(p.org_id, p.id, Role.AGENT)

    # -- certificates recorded in the CA tables, as enrollment records them
    def certify(self, name: str, *, policies: Sequence[str] = (DEFAULT_SIGNING_POLICY,), record: bool = True,
                not_after: dt.datetime | None = None) -> Signer:
        soft = minipki.SoftToken()
        cert = self.ca.issue(minipki.name(f"{name.title()} Envelope"), soft.public_key, policies=policies,
                             pointers=False, not_after=not_after)
        if record:
            loaded = cx509.load_der_x509_certificate(cert)
            spki = soft.key("k").public_key_der
            db.insert(self.store, db.CertRecord(
                issuer_key_hash=self.rules.issuer_key_hash, serial=loaded.serial_number, origin=db.ORIGIN_ISSUED,
                subject=loaded.subject.rfc4514_string(), person_id=self.people[name].id, key_hash=db.spki_hash(spki),
                not_before=loaded.not_valid_before_utc, not_after=loaded.not_valid_after_utc, status="good",
                revocation_reason=None, revoked_at=None, der=cert), now=self.clock.now())
        return Signer(self.people[name], cert, soft, tuple(self.ca.chain_der))

    # -- the journey's steps
    def deliver(self) -> int:
        """Hand the queued notices to the outbox (what the dispatcher thread does after each change)."""
        return self.svc.dispatcher.run_once()

    def create(self, sender: str, recipients: Sequence[tuple[str, RecipientRole, int]], *,
               documents: Sequence[DocumentInput] | None = None, fields: bool = False, **kw) -> Envelope:
        specs = [RecipientInput(self.people[n].id, role, order, SigningMethod.TOKEN,
                                SignatureField(1, 56, 56 + 80 * i, 276, 116 + 80 * i)
                                if fields and role is not RecipientRole.COPY else None)
                 for i, (n, role, order) in enumerate(recipients)]
        return self.svc.create(self.me(sender), title=kw.pop("title", "Lease of the harbour crane"),
                               documents=documents or [DocumentInput("contract.pdf", "application/pdf", CONTRACT)],
                               recipients=specs, **kw)

    def code(self, name: str) -> str:
        """The signing code just sent to ``name``'s phone, read from the outbox (exactly one is unread)."""
        [entry] = [e for e in self.outbox.list(to=PHONES[name], unread_only=True) if e.topic == "otp.envelope-sign"]
        m = re.search(r"\b(\d{6})\b", self.outbox.read(entry.id).body)
        assert m is not None
        self.last_code = m.group(1)
        return self.last_code

    def sign_pdf(self, data: bytes, name: str, field_name: str | None, *, signer: Signer | None = None) -> bytes:
        s = signer or self.signers[name]
        src, out = self.tmp / "in.pdf", self.tmp / "out.pdf"
        src.write_bytes(data)
        sign_pdf(src, out, s.signer(), PdfSignOptions(field_name=field_name))
        return out.read_bytes()

    def sign_detached(self, data: bytes, name: str) -> bytes:
        return sign_detached(io.BytesIO(data), self.signers[name].signer())

    def sign(self, env: Envelope, name: str, doc: int = 0, *, signer: Signer | None = None,
             content: bytes | None = None, code: str | None = None, key: str = "") -> Envelope:
        """``name`` gets the notices sent so far, fetches the current revision, asks for a code, signs and
        submits: the whole turn."""
        self.deliver()
        me = self.me(name)
        got = self.svc.get_document(me, env.id, env.documents[doc].id)
        challenge = self.svc.start_signing(me, env.id, got.document.id, got.document.current_sha256)
        r = next(x for x in self.svc.get(me, env.id).recipients if x.person_id == me.subject)
        if content is None:
            content = (self.sign_pdf(got.content, name, r.field_name, signer=signer) if got.document.is_pdf
                       else self.sign_detached(got.content, name))
        return self.svc.submit_signature(me, env.id, got.document.id, content=content,
                                         code=code or self.code(name), code_id=challenge.code_id,
                                         idempotency_key=key)

    def snapshot(self, envelope_id: str) -> tuple:
        """Everything a refusal must leave as it was: the envelope, its revisions, blobs on disk."""
        rows = self.store.query("SELECT * FROM envelope_revisions r JOIN envelope_documents d ON d.id = r.document_id "
                                "WHERE d.envelope_id = ? ORDER BY r.document_id, r.seq", (envelope_id,))
        blobs = sorted(str(p.relative_to(self.blobs.directory)) for p in self.blobs.directory.rglob("*") if p.is_file())
        env = self.store.query_one("SELECT * FROM envelopes WHERE id = ?", (envelope_id,))
        rcpts = self.store.query("SELECT * FROM envelope_recipients WHERE envelope_id = ? ORDER BY position",
                                 (envelope_id,))
        return env, rcpts, rows, blobs

    def events(self, envelope_id: str) -> list[str]:
        return [e.type for e in self.svc.list_events(self.me("alice"), envelope_id, page_size=200)]


def _register(identity: IdentityService, outbox: OutboxChannel, op: Principal, reviewer: Principal,
              name: str) -> Person:
    p = identity.register_person(op, legal_name=f"{name.title()} Envelope", document_type="prc_resident_id",
                                 document_number=DOCS[name], phone=PHONES[name], email=f"{name}@example.com")
    challenge = identity.start_phone_verification(op, p.id)
    entry = outbox.list(to=PHONES[name], limit=1)[0]
    code = re.search(r"\b(\d{6})\b", outbox.read(entry.id).body)
    assert code is not None
    identity.confirm_phone(op, p.id, code.group(1), challenge.code_id)
    return identity.approve(reviewer, p.id, evidence="ID card inspected")


def make_world(tmp_path: Path, *, limits: Limits | None = None, approve: Sequence[str] = tuple(DOCS),
               email: Channel | None = None, tuning: Tuning | None = None) -> World:
    """``email``: the channel envelope notices go through (default: the outbox, like everything else)."""
    store = store_for_test(tmp_path, "server.db")
    clock = ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=123456))
    box = AesGcmBox.generate()
    outbox = OutboxChannel(store, box, clock)
    identity = IdentityService(store, box, b"h" * 32, outbox, clock,
                               otp_policy=OtpPolicy(min_interval=dt.timedelta(0), hourly_limit=100))
    acme, other = identity.create_organisation("Acme Ltd"), identity.create_organisation("Other Co")
    ops = {org.id: (Principal(org.id, "op", Role.OPERATOR), Principal(org.id, "reviewer", Role.OPERATOR))
           for org in (acme, other)}
    db.migrate(store)
    root = minipki.MiniCA("Signet Signing Root", None,
                          policies=[SIGNING_ROOT_MARKER, DEFAULT_SIGNING_POLICY, DEFAULT_REMOTE_POLICY])
    ca = minipki.MiniCA("Signet Signing CA", None, parent=root, policies=[ANY_POLICY])
    spki = cx509.load_der_x509_certificate(ca.root_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    rules = SigningRules((root.root_der,), hashlib.sha256(spki).hexdigest(), DEFAULT_SIGNING_POLICY,
                         DEFAULT_REMOTE_POLICY)
    blobs = FileBlobStore(tmp_path / "blobs")
    notifier: Channel = Router(outbox, {AddressKind.EMAIL: email}) if email is not None else outbox
    svc = EnvelopeService(store, blobs, identity, notifier, rules=rules, clock=clock, limits=limits, tuning=tuning)
    w = World(tmp_path, store, clock, outbox, identity, blobs, svc, root, ca, rules,
              acme_op=ops[acme.id][0], other_op=ops[other.id][0], notifier=notifier, tuning=tuning)
    for name, doc in DOCS.items():
        org = other if name == "dave" else acme
        op, reviewer = ops[org.id]
        if name in approve:
            w.people[name] = _register(identity, outbox, op, reviewer, name)
        else:
            w.people[name] = identity.register_person(
                op, legal_name=f"{name.title()} Envelope", document_type="prc_resident_id",
                document_number=doc, phone=PHONES[name], email=f"{name}@example.com")
    for name in approve:
        w.signers[name] = w.certify(name)
    return w


@pytest.fixture(name="w")
def world_fixture(tmp_path: Path) -> World:
    return make_world(tmp_path)


S, A, C = RecipientRole.SIGNER, RecipientRole.APPROVER, RecipientRole.COPY


def test_the_world_is_as_described(w: World) -> None:
    assert {p.status.value for p in w.people.values()} == {"approved"}
    assert w.people["dave"].org_id != w.people["alice"].org_id
    rec = db.find(w.store, w.rules.issuer_key_hash, int(w.signers["bob"].serial, 16))
    assert rec is not None and rec.person_id == w.people["bob"].id
