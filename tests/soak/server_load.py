"""The server under crash soak: one signet-server (SQLite store, WAL + synchronous=FULL) loaded with
registrations and phone codes from the outbox, enrollments (a key on an in-process SoftHSM token, the code from
the outbox) and revocations through the operator API.

After each kill -9 and restart, read from the store read-only: every acknowledged person, phone code (its
otp row and outbox message), phone confirmation, approval, enrollment code, certificate (the exact DER, bound to
its person, still good unless a revocation was asked for) and revocation (with its reason) is there; the
evidence chains are whole; integrity_check passes; no temp file is left in the state directory.  The people
and certificates of the round are also read back through the API (GetPerson, ListEvidence -- which
re-computes the evidence digests --, GetCertificateStatus).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import os
import queue
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

from scripts.processes import ServerProcess
from tests.e2e.server_harness import Running, channel, prc_id, start_running

from .framework import (
    AckLog,
    children,
    describe,
    integrity,
    leftover_files,
    load_generator,
    orphans_of_kill,
    read_only,
    repeat,
)

REASONS = ("unspecified", "key_compromise", "affiliation_changed", "superseded", "cessation_of_operation",
           "privilege_withdrawn")


class TokenLike(Protocol):
    label: str
    pin: str


@dataclass
class ServerState:
    """The store as read after a restart, plus the round (for the API checks of its own operations)."""

    acked: AckLog
    round: int
    people: dict[str, dict[str, Any]]
    evidence: dict[str, list[dict[str, Any]]]  # person id -> records in seq order
    otp: dict[str, str]  # code id -> status (active, used, ...)
    outbox_to: dict[str, int]  # phone -> messages
    certs: dict[int, dict[str, Any]]  # serial -> row
    side: ServerSide


@dataclass
class ServerSide:
    directory: Path
    token: TokenLike  # the server's token
    user_token: TokenLike  # where enrollments make their keys
    rng: random.Random
    name: str = "server"
    acked: AckLog = field(default_factory=AckLog)
    running: Running = field(init=False)
    approved: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)  # (person id, phone)
    issued: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)  # (serial, person id)
    revoke_asked: set[int] = field(default_factory=set)  # serials a revocation was sent for (acked or not)
    _people: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _box: Any = None
    _archive: Any = None
    sealed_seen: int = 0  # sealed envelopes the last check read back from the archive
    _user: Any = None
    _killed_children: list[int] = field(default_factory=list)
    _orphans: list[str] = field(default_factory=list)

    def start(self) -> float:
        from hsm import Hsm
        from server.config import load_config
        from server.datakeys import load_data_keys

        t0 = time.monotonic()
        self.running = start_running(self.directory / "server", self.token.label, self.token.pin)
        took = time.monotonic() - t0
        # the outbox bodies are sealed with the server's data key: unwrap it once, with the server token, to read
        # the one-time codes without a signet-admin process per code
        hsm = Hsm(pin_state=self.directory / "soak-pin-failures.json")
        server_token = hsm.token(label=self.token.label)
        server_token.login(self.token.pin)
        try:
            with mock.patch.dict(os.environ, self.env.environ()):  # the configuration names the PIN variable
                cfg = load_config(self.env.config)
            self._box = load_data_keys(cfg, server_token).box
        finally:
            server_token.logout()
        self._user = hsm.token(label=self.user_token.label)
        self._user.login(self.user_token.pin)
        return took

    @property
    def env(self) -> Any:
        return self.running.env

    @property
    def sealer(self) -> Any:
        """Opens the store's sealed fields (titles, names, reasons), with the data key unwrapped at start."""
        from server.store.fields import FieldSealer

        return FieldSealer(self._box)

    @property
    def store_path(self) -> Path:
        return self.env.state / "signet.sqlite"

    def working_blob(self, sha256: str, org: str = "") -> bytes | None:
        """An envelope's working revision as the server stored it (encrypted in its archive, unwrapped with the
        server token here); None when it is not there.  Raises when it is there but damaged."""
        from hsm import Hsm
        from server.archive import Archive
        from server.archive.working import WorkingBlobs
        from server.blobs import BlobMissing
        from server.store import open_store

        if self._archive is None:
            token = Hsm(pin_state=self.directory / "soak-pin-failures.json").token(label=self.token.label)
            token.login(self.token.pin)
            self._archive = Archive(token, open_store(str(self.store_path)), self.env.state / "archive")
        try:
            return bytes(WorkingBlobs(self._archive).get(sha256, org=org))  # bound to the envelope's organisation
        except BlobMissing:
            return None

    def archive(self) -> Any:
        """The server's archive, opened here with the server token (for reading sealed objects back)."""
        self.working_blob("0" * 64)  # opens it
        return self._archive

    def audit_certificate(self) -> bytes:
        from server.ca import Role
        from server.keys import load_server_keys
        from server.store import open_store

        archive = self.archive()
        keys = load_server_keys(archive._token, open_store(str(self.store_path)))
        return bytes(keys.certificate_der(Role.AUDIT))

    def working_blob_exists(self, sha256: str, org: str = "") -> bool:
        from server.archive.working import WorkingBlobs

        return self._archive is not None and WorkingBlobs(self._archive).exists(sha256, org=org)

    def begin_round(self, number: int) -> None:
        self._orphans = []

    def kill(self) -> None:
        if not hasattr(self, "running"):
            return
        self._killed_children = children(self.running.server.proc.pid)
        self.running.server.kill()

    def restart(self) -> float:
        self._orphans = orphans_of_kill(self._killed_children)
        t0 = time.monotonic()
        self.running.server = ServerProcess(self.env)
        return time.monotonic() - t0

    def state(self) -> ServerState:
        evidence: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with read_only(self.store_path, self.sealer) as db:
            people = {r["id"]: dict(r) for r in db.execute(
                "SELECT id, legal_name, phone, status, phone_verified_at, evidence_head FROM identity_people")}
            for r in db.execute("SELECT person_id, seq, kind, prev_digest, digest FROM identity_evidence "
                                "ORDER BY person_id, seq"):
                evidence[r["person_id"]].append(dict(r))
            otp = {r[0]: r[1] for r in db.execute("SELECT id, status FROM otp_codes")}
            outbox = {r[0]: r[1] for r in db.execute("SELECT to_value, count(*) FROM notify_outbox GROUP BY to_value")}
            certs = {int(r["serial"], 16): dict(r) for r in db.execute(
                "SELECT serial, origin, person_id, cert_sha256, status, revocation_reason, revoked_at "
                "FROM ca_certificates WHERE origin = 'issued'")}
        return ServerState(self.acked, self.acked.round, people, dict(evidence), otp, outbox, certs, self)

    def invariants(self, state: ServerState) -> list[str]:
        problems = list(self._orphans) + integrity(self.store_path)
        leftovers = leftover_files(self.env.state)
        if leftovers:
            problems.append(f"temporary files left in the state directory: {leftovers[:5]}")
        for pid, person in state.people.items():  # every chain links up and ends at the person's head
            recs = state.evidence.get(pid, [])
            prev = "0" * 64
            for i, r in enumerate(recs, start=1):
                if r["seq"] != i or r["prev_digest"] != prev:
                    problems.append(f"person {pid}: evidence chain broken at record {i}")
                    break
                prev = r["digest"]
            else:
                if (person["evidence_head"] or "0" * 64) != prev:
                    problems.append(f"person {pid}: evidence head is not the last record")
        return problems

    def round_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"children at kill": len(self._killed_children)} if self._killed_children else {}
        if self.sealed_seen:
            info["sealed envelopes checked"] = self.sealed_seen
        return info

    def close(self) -> None:
        if self._user is not None:
            with contextlib.suppress(Exception):  # best effort at the end
                self._user.logout()
        if self.running.server.proc.poll() is None:
            self.running.server.stop()

    # -- helpers for the generators --------------------------------------------------------------------------
    def new_person(self) -> tuple[str, str, str, str]:
        """(legal name, PRC resident ID number, phone, email), unique within this server."""
        with self._lock:
            n = next(self._people)
        birth = (dt.date(1950, 1, 1) + dt.timedelta(days=n % 18000)).strftime("%Y%m%d")
        return (f"Soak Person {n}", prc_id(birth, f"{(n // 18000) % 1000:03d}"), f"+86139{n:08d}",
                f"p{n}@soak.example")

    def code(self, phone: str, digits: int) -> str:
        """The code of the newest outbox message to ``phone`` (read-only store access, body unsealed here)."""
        from server.notify.outbox import OutboxChannel

        with read_only(self.store_path, self.sealer) as db:
            row = db.execute("SELECT id, body_sealed FROM notify_outbox WHERE to_value = ? "
                             "ORDER BY created_at DESC, id DESC LIMIT 1", (phone,)).fetchone()
        if row is None:
            raise AssertionError(f"no outbox message to {phone}")
        body = self._box.decrypt(bytes(row["body_sealed"]), OutboxChannel._aad(row["id"])).decode()
        m = re.search(rf"\b(\d{{{digits}}})\b", body)
        if m is None:
            raise AssertionError(f"no {digits}-digit code in the newest message to {phone}")
        return m.group(1)


def _kinds(state: ServerState, pid: str) -> list[str]:
    return [r["kind"] for r in state.evidence.get(pid, [])]


PERSON_STAGES = {  # ack kind -> (evidence kind, check of the person row)
    "person_registered": ("registered", lambda p: True),
    "phone_code_sent": ("phone_code_sent", lambda p: True),
    "phone_verified": ("phone_verified", lambda p: p["phone_verified_at"] is not None),
    "person_approved": ("approved", lambda p: p["status"] == "approved"),
}


@load_generator("server", "identity")
class Registrations:
    """RegisterPerson (operator A), StartPhoneVerification, ConfirmPhone with the code from the outbox,
    ApprovePerson (the second operator: four eyes); each step acknowledged on its own."""

    name = "identity"
    threads = 2

    def __init__(self, side: ServerSide) -> None:
        self.side = side

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        from signet.v1 import server_pb2 as pb
        from signet.v1 import server_pb2_grpc as pbg

        side = self.side
        r = side.running
        with channel(r.env, r.op_a) as op, channel(r.env, r.reviewer_a) as rev:
            ids, reviewer = pbg.IdentityServiceStub(op), pbg.IdentityServiceStub(rev)

            def step() -> None:
                name, doc, phone, email = side.new_person()
                person = ids.RegisterPerson(pb.RegisterPersonRequest(
                    legal_name=name, document_type="prc_resident_id", document_number=doc, phone=phone,
                    email=email), timeout=30).person
                acked.ack("person_registered", person.id, name=name, phone=phone)
                challenge = ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=person.id),
                                                       timeout=30).challenge
                acked.ack("phone_code_sent", person.id, code_id=challenge.code_id, phone=phone)
                ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=person.id, code=side.code(phone, 6),
                                                        code_id=challenge.code_id), timeout=30)
                acked.ack("phone_verified", person.id, code_id=challenge.code_id)
                reviewer.ApprovePerson(pb.ApprovePersonRequest(person_id=person.id, evidence="ID card inspected",
                                                               reference=f"soak-{person.id}"), timeout=30)
                acked.ack("person_approved", person.id)
                side.approved.put((person.id, phone))

            repeat(stop, acked, self.name, step)

    def check(self, state: ServerState) -> list[str]:
        problems = []
        for kind, (evidence_kind, row_ok) in PERSON_STAGES.items():
            for a in state.acked.of(kind):
                person = state.people.get(a.key)
                if person is None:
                    problems.append(f"LOST {kind} (round {a.round}): person {a.key} is not in the store")
                    continue
                if kind == "person_registered" and (person["legal_name"], person["phone"]) != \
                        (a.data["name"], a.data["phone"]):
                    problems.append(f"person {a.key}: stored name/phone differ from those registered")
                if not row_ok(person):
                    problems.append(f"LOST {kind} (round {a.round}): person {a.key} is {person['status']}, "
                                    f"phone_verified_at={person['phone_verified_at']}")
                if evidence_kind not in _kinds(state, a.key):
                    problems.append(f"LOST {kind} (round {a.round}): no {evidence_kind!r} evidence for {a.key}")
                if kind == "phone_verified" and state.otp.get(a.data["code_id"]) != "used":
                    problems.append(f"phone code {a.data['code_id']} of {a.key} was accepted (round {a.round}) but "
                                    f"is {state.otp.get(a.data['code_id'])!r} after the restart: usable again")
                if kind == "phone_code_sent":
                    if a.data["code_id"] not in state.otp:
                        problems.append(f"LOST {kind} (round {a.round}): no otp_codes row {a.data['code_id']}")
                    if state.outbox_to.get(a.data["phone"], 0) < 1:
                        problems.append(f"LOST {kind} (round {a.round}): no outbox message to {a.data['phone']}")
        problems += self._through_api(state)
        return problems

    def _through_api(self, state: ServerState) -> list[str]:
        """This round's people as the API shows them (ListEvidence re-computes every digest of the chain)."""
        import grpc

        from signet.v1 import server_pb2 as pb
        from signet.v1 import server_pb2_grpc as pbg

        problems = []
        r = self.side.running
        latest: dict[str, str] = {}
        for kind in PERSON_STAGES:
            for a in state.acked.of(kind, round=state.round):
                latest[a.key] = kind
        with channel(r.env, r.op_a) as op:
            ids = pbg.IdentityServiceStub(op)
            for pid, kind in latest.items():
                try:
                    person = ids.GetPerson(pb.GetPersonRequest(person_id=pid), timeout=30).person
                    kinds = [e.kind for e in ids.ListEvidence(pb.ListEvidenceRequest(person_id=pid),
                                                              timeout=30).records]
                except grpc.RpcError as e:
                    problems.append(f"API: person {pid} ({kind}): {e.code().name} {e.details()}")
                    continue
                if kind == "person_approved" and person.status != pb.PERSON_STATUS_APPROVED:
                    problems.append(f"API: person {pid} acknowledged approved, shown {person.status}")
                if kind in ("phone_verified", "person_approved") and not person.HasField("phone_verified_at"):
                    problems.append(f"API: person {pid} acknowledged phone-verified, shown without it")
                if PERSON_STAGES[kind][0] not in kinds:
                    problems.append(f"API: person {pid}: evidence {kinds} lacks {PERSON_STAGES[kind][0]!r}")
        return problems


@load_generator("server", "enrollment")
class Enrollments:
    """StartEnrollment for an approved person, the 8-digit code from the outbox, Enroll with a key generated on
    a SoftHSM token (agent.enroll.enroll); acknowledged: the code sent, the certificate issued."""

    name = "enrollment"
    threads = 1

    def __init__(self, side: ServerSide) -> None:
        self.side = side

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        from agent.enroll import enroll
        from agent.serverlink import ServerLink, ServerTarget

        side = self.side
        with ServerLink(ServerTarget(enroll=side.env.enroll, ca_pem=side.env.ca_pem.read_bytes())) as link:

            def step() -> None:
                try:
                    pid, phone = side.approved.get(timeout=0.2)
                except queue.Empty:
                    return
                challenge = link.start_enrollment(pid)
                acked.ack("enrollment_code_sent", pid, code_id=challenge.code_id)
                res = enroll(side._user, link, pid, side.code(phone, 8), code_id=challenge.code_id,
                             key_label=f"soak-{pid}")
                acked.ack("certificate_issued", res.serial, person_id=pid, code_id=challenge.code_id,
                          sha256=hashlib.sha256(res.certificate_der).hexdigest())
                side.issued.put((res.serial, pid))
                try:  # the key has done its part; keeping hundreds would slow the token down
                    side._user.delete_key(res.key_id)
                except Exception as e:  # not the server's durability
                    acked.failed("token-cleanup", e)

            repeat(stop, acked, self.name, step)

    def check(self, state: ServerState) -> list[str]:
        problems = []
        for a in state.acked.of("enrollment_code_sent"):
            if a.data["code_id"] not in state.otp:
                problems.append(f"LOST enrollment_code_sent (round {a.round}): no otp_codes row {a.data['code_id']}")
            if "enrollment_code_sent" not in _kinds(state, a.key):
                problems.append(f"LOST enrollment_code_sent (round {a.round}): no evidence for {a.key}")
        for a in state.acked.of("certificate_issued"):
            serial = int(a.key, 16)
            rec = state.certs.get(serial)
            if rec is None:
                problems.append(f"LOST certificate_issued (round {a.round}): serial {a.key} is not in the store")
                continue
            if rec["person_id"] != a.data["person_id"] or rec["cert_sha256"] != a.data["sha256"]:
                problems.append(f"certificate {a.key}: stored holder/DER differ from those issued")
            if rec["status"] != "good" and serial not in self.side.revoke_asked:
                problems.append(f"certificate {a.key} is {rec['status']} though nobody asked to revoke it")
            if state.otp.get(a.data["code_id"]) != "used":
                problems.append(f"enrollment code {a.data['code_id']} was accepted (round {a.round}) but is "
                                f"{state.otp.get(a.data['code_id'])!r} after the restart: usable again")
            if "certificate_issued" not in _kinds(state, a.data["person_id"]):
                problems.append(f"LOST certificate_issued (round {a.round}): no evidence for {a.data['person_id']}")
        return problems + _certificates_through_api(self.side, state, "certificate_issued")


def _certificates_through_api(side: ServerSide, state: ServerState, kind: str) -> list[str]:
    import grpc

    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    problems = []
    with channel(side.env, side.running.op_a) as op:
        certs = pbg.CertificateServiceStub(op)
        for a in state.acked.of(kind, round=state.round):
            try:
                info = certs.GetCertificateStatus(pb.GetCertificateStatusRequest(serial=a.key), timeout=30).certificate
            except grpc.RpcError as e:
                problems.append(f"API: certificate {a.key} ({kind}): {e.code().name} {e.details()}")
                continue
            if kind == "certificate_revoked" and (info.state != pb.CERTIFICATE_STATE_REVOKED
                                                  or info.revocation_reason != a.data["reason"]):
                problems.append(f"API: certificate {a.key} acknowledged revoked ({a.data['reason']}), shown "
                                f"state {info.state} reason {info.revocation_reason!r}")
    return problems


@load_generator("server", "revocation")
class Revocations:
    """RevokeCertificate (operator A) for about half of the issued certificates, with a random reason; the rest
    must stay good."""

    name = "revocation"
    threads = 1

    def __init__(self, side: ServerSide) -> None:
        self.side = side
        self._rng = random.Random(side.rng.random())

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        from signet.v1 import server_pb2 as pb
        from signet.v1 import server_pb2_grpc as pbg

        side = self.side
        with channel(side.env, side.running.op_a) as op:
            certs = pbg.CertificateServiceStub(op)

            def step() -> None:
                try:
                    serial, _ = side.issued.get(timeout=0.2)
                except queue.Empty:
                    return
                if self._rng.random() < 0.5:
                    return  # kept: must stay good
                reason = self._rng.choice(REASONS)
                with side._lock:
                    side.revoke_asked.add(int(serial, 16))
                info = certs.RevokeCertificate(pb.RevokeCertificateRequest(serial=serial, reason=reason),
                                               timeout=30).certificate
                if info.state != pb.CERTIFICATE_STATE_REVOKED:
                    raise AssertionError(f"RevokeCertificate answered OK with state {info.state}")
                acked.ack("certificate_revoked", serial, reason=reason)

            repeat(stop, acked, self.name, step)

    def check(self, state: ServerState) -> list[str]:
        problems = []
        for a in state.acked.of("certificate_revoked"):
            rec = state.certs.get(int(a.key, 16))
            if rec is None or rec["status"] != "revoked" or rec["revocation_reason"] != a.data["reason"] \
                    or not rec["revoked_at"]:
                shown = None if rec is None else (rec["status"], rec["revocation_reason"], rec["revoked_at"])
                problems.append(f"LOST certificate_revoked (round {a.round}): {a.key} ({a.data['reason']}) "
                                f"is stored as {shown}")
        return problems + _certificates_through_api(self.side, state, "certificate_revoked")


def _http_get(side: ServerSide, path: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{side.env.pki_url}{path}", timeout=30) as r:  # 127.0.0.1: our own server
        return bytes(r.read())


def _crl_number(crl: Any) -> int:
    from cryptography import x509

    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


@load_generator("server", "crl")
class CrlFetches:
    """GET /crl/signing-ca.crl while revocations go on (each fetch after a revocation signs a new CRL); an
    acknowledged CRL is one served with a valid signature.  After the restart: each served CRL number is stored
    with the same bytes (a number is never reused for other content), and the current CRL lists every
    acknowledged revocation and no certificate nobody asked to revoke."""

    name = "crl"
    threads = 1
    INTERVAL = 0.25  # the PKI listener limits requests per client address (600 a minute by default)

    def __init__(self, side: ServerSide) -> None:
        self.side = side
        self._ca: Any = None

    def _load(self) -> Any:
        from cryptography import x509

        if self._ca is None:
            self._ca = x509.load_der_x509_certificate(_http_get(self.side, "/ca/signing-ca.crt"))
        der = _http_get(self.side, "/crl/signing-ca.crl")
        crl = x509.load_der_x509_crl(der)
        if not crl.is_signature_valid(self._ca.public_key()):
            raise AssertionError(f"CRL {_crl_number(crl)} served with an invalid signature")
        return crl, der

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        def step() -> None:
            crl, der = self._load()
            acked.ack("crl_published", str(_crl_number(crl)), sha256=hashlib.sha256(der).hexdigest())
            stop.wait(self.INTERVAL)

        repeat(stop, acked, self.name, step)

    def check(self, state: ServerState) -> list[str]:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        problems = []
        try:
            crl, _ = self._load()
        except Exception as e:
            return [f"current CRL after the restart: {describe(e)}"]
        issuer = hashlib.sha256(self._ca.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
        with read_only(self.side.store_path, self.side.sealer) as db:
            stored = {int(r[0]): hashlib.sha256(bytes(r[1])).hexdigest() for r in db.execute(
                "SELECT number, der FROM ca_crls WHERE issuer_key_hash = ?", (issuer,))}
        served = state.acked.of("crl_published")
        for a in served:
            got = stored.get(int(a.key))
            if got is None:
                problems.append(f"LOST crl_published (round {a.round}): CRL number {a.key} is not in the store")
            elif got != a.data["sha256"]:
                problems.append(f"CRL number {a.key} served in round {a.round} is stored with other content: "
                                "a CRL number was reused")
        number = _crl_number(crl)
        if served and number < max(int(a.key) for a in served):
            problems.append(f"the CRL after the restart has number {number}, below one already served")
        listed: dict[int, str] = {}
        for entry in crl:
            try:
                listed[entry.serial_number] = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
            except x509.ExtensionNotFound:
                listed[entry.serial_number] = "unspecified"
        for a in state.acked.of("certificate_revoked"):
            serial = int(a.key, 16)
            if serial not in listed:
                problems.append(f"LOST certificate_revoked (round {a.round}): {a.key} is not on CRL {number}")
            elif listed[serial] != a.data["reason"]:
                problems.append(f"certificate {a.key}: CRL {number} says {listed[serial]}, revoked for "
                                f"{a.data['reason']}")
        for a in state.acked.of("certificate_issued"):
            serial = int(a.key, 16)
            if serial in listed and serial not in self.side.revoke_asked:
                problems.append(f"certificate {a.key} is on CRL {number} though nobody asked to revoke it")
        return problems
