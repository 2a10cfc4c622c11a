"""The in-process systems the handler targets call into: one agent and one server PKI, each on a real SoftHSM token.

Built once per fuzz process (``agent_world()`` / ``server_world()`` are cached).  Names the seeds rely on are
fixed here: the agent's token label and key ids, and the placeholders a server request may carry instead of
the random ids of the fixture's people and certificates (``@p1`` approved and enrolled, ``@p2`` pending,
``@s1`` the serial of @p1's certificate, ``@s2`` a revoked one, ``@e1``/``@e2`` the id and digits of a live
enrollment code of @p1; envelopes: ``@p3`` another approved person, ``@v1`` an envelope @p3 sent whose only
signer is @p1 (their turn), with ``@d1`` its PDF (:data:`ENVELOPE_PDF`) and ``@d2`` its text file
(:data:`ENVELOPE_TEXT`), ``@h1``/``@h2`` their current SHA-256 (hex), ``@c1``/``@c2`` the id and digits of a live
signing code of @p1 for @d1, ``@c3``/``@c4`` for @d2, ``@v2`` a draft of @p1 (signer @p3) and ``@d3`` its PDF;
bytes: ``@card`` @p1's signer certificate, ``@proof`` a fresh card proof of @p1's card for the fuzz station)
-- see :meth:`ServerWorld.resolve`, :meth:`ServerWorld.card_proof` and :meth:`ServerWorld.ocsp_placeholders`.
Each approved person's signing key is a software key the world keeps (their "card").  EnvelopeService calls come from
@p1's agent (the real Authenticator, @p1's agent TLS client certificate) or, first byte's bit 7, from the
operator ``fuzz-op`` (its own TLS client certificate).

State the fuzzer changes on purpose (a generated key, a deleted or re-certified fixture key, a person rejected,
a certificate revoked, an envelope sent, voided, declined or signed, a signing code spent or burnt) is put back
after the call, so that one lucky input does not close paths for the rest of the run:
:meth:`AgentWorld.restore`, :meth:`ServerWorld.refresh`.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import env

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AGENT_TOKEN = "fuzz-agent"
EC_KEY_ID = "ec" * 8  # CKA_ID hex of the P-256 fixture key, labelled "fuzz-ec"
RSA_KEY_ID = "ae" * 8  # CKA_ID hex of the RSA-2048 fixture key, labelled "fuzz-rsa"
FIXTURE_KEYS = {EC_KEY_ID: ("fuzz-ec", "p256"), RSA_KEY_ID: ("fuzz-rsa", "rsa-2048")}
SERVER_TOKEN = "fuzz-server"
PERSON_APPROVED = "@p1"
PERSON_PENDING = "@p2"
CERT_SERIAL = "@s1"
REVOKED_SERIAL = "@s2"
ENROLL_CODE_ID = "@e1"
ENROLL_CODE = "@e2"
SENDER = "@p3"
ENVELOPE_SENT = "@v1"
ENVELOPE_DRAFT = "@v2"
CARD = b"@card"  # a bytes placeholder: @p1's signer certificate (what a station reads from the card)
CARD_PROOF = b"@proof"  # OpenCardSessionRequest.proof_statement (and _signature): a fresh proof (card_proof)
STATION = "fuzz-station"  # the name of the fuzz signing station (KioskService's caller)
SENT_PDF, SENT_TEXT, DRAFT_PDF = "@d1", "@d2", "@d3"
SENT_PDF_SHA, SENT_TEXT_SHA = "@h1", "@h2"
SIGN_CODES = {SENT_PDF: ("@c1", "@c2"), SENT_TEXT: ("@c3", "@c4")}  # document -> (code id, digits) of @p1's code
ENVELOPE_TEXT = b"Schedule 1: the crane is returned in working order.\n"


@functools.cache
def envelope_pdf() -> bytes:
    """@d1's bytes (deterministic: make_seeds signs the same bytes for a SubmitSignature seed)."""
    from formats.samplepdf import contract_pdf_bytes

    return contract_pdf_bytes("Fuzz Envelope", ["Fuzz Sender", "Fuzz Signer"])


# -- the agent --------------------------------------------------------------------------------------------------------
@dataclass
class AgentWorld:
    agent: Any  # agent.app.Agent
    servicer: Any  # agent.servicer.AgentServicer
    serial: str
    certificates: dict[str, bytes]  # key id -> the certificate the fixture imported
    ca: Any  # tests.pki.TestCA that certified the fixture keys
    last_grant: str = ""  # the handle of the last successful Unlock (agent_handler may present it)

    @property
    def ca_root(self) -> bytes:
        return bytes(self.ca.root_der)

    def token(self) -> Any:
        return self.agent.directory.resolve(self.serial, "")

    def restore(self) -> None:
        """Delete keys the fuzzer generated; re-create or re-certify a fixture key it deleted or replaced."""
        from agent.config import LOCAL_CALLER
        from hsm import keys as hsm_keys
        from hsm.errors import KeyNotFound

        token = self.token()
        with self.agent.unlock.use(LOCAL_CALLER, token, env.USER_PIN, 0, None):
            present = {k.key_id for k in token.keys()}
            for key_id in present - set(FIXTURE_KEYS):
                token.delete_key(key_id)
            for key_id, (label, algo) in FIXTURE_KEYS.items():
                if key_id not in present:
                    from hsm import KeyAlgorithm

                    with token.pool.session() as s:
                        hsm_keys.generate(s.session, KeyAlgorithm.parse(algo), label, key_id=bytes.fromhex(key_id))
                    self.certificates[key_id] = _certify(token, key_id, label, self.ca)
                try:
                    current = token.certificate(key_id)
                except KeyNotFound:
                    current = None
                if current != self.certificates[key_id]:
                    token.import_certificate(key_id, self.certificates[key_id], [self.ca_root])
        self.agent.signing.material.forget(self.serial)


def _certify(token: Any, key_id: str, label: str, ca: Any) -> bytes:
    csr = token.create_csr(key_id, {"common_name": f"Fuzz Signer {label}", "country_name": "CN",
                                    "organization_name": "Signet Fuzz"}, emails=["fuzz@example.com"])
    der: bytes = ca.issue_from_csr(csr)
    token.import_certificate(key_id, der, [ca.root_der])
    return der


@functools.cache
def agent_world() -> AgentWorld:
    env.softhsm()
    from agent.app import Agent
    from agent.config import LOCAL_CALLER, AgentConfig, KeyRule, PolicyConfig, UnlockPolicy, VerifyConfig
    from agent.servicer import AgentServicer
    from hsm import Hsm, KeyAlgorithm
    from hsm import keys as hsm_keys
    from tests.pki import make_ca

    base = env.workdir() / "agent"
    base.mkdir(parents=True, exist_ok=True)
    serial = env.new_token(AGENT_TOKEN)
    ca = make_ca("Signet Fuzz Agent CA")
    setup = Hsm(pin_state=base / "setup-pins.json").token(serial=serial)
    setup.login(env.USER_PIN)
    certificates = {}
    for key_id, (label, algo) in FIXTURE_KEYS.items():
        with setup.pool.session() as s:
            hsm_keys.generate(s.session, KeyAlgorithm.parse(algo), label, key_id=bytes.fromhex(key_id))
        certificates[key_id] = _certify(setup, key_id, label, ca)
    setup.logout()
    roots = base / "roots.pem"
    roots.write_bytes(ca.root_pem)
    rules = tuple(KeyRule(callers=(LOCAL_CALLER,), label=label, allow_digests=True)
                  for label, _ in FIXTURE_KEYS.values())
    cfg = AgentConfig(
        socket=base / "agent.sock", state_dir=base / "state",
        # a fuzzer guesses PINs all day: neither the PIN lock nor the throttle may close the token for the run
        max_pin_failures=10**9, unlock=UnlockPolicy(max_seconds=300, max_signatures=5, pin_tries_per_minute=10**9),
        pdf_workers=0, verify_workers=0,  # jobs run in this process, where the fuzzer sees them
        max_document_bytes=1 << 20, max_inline_bytes=256 * 1024, chunk_bytes=64 * 1024,
        trust_roots=(roots,), timestamp_urls=("http://127.0.0.1:9/tsa",),  # port 9: nothing listens
        policy=PolicyConfig(keys=rules),
        # no network from a fuzzer: verification offline, and a fuzzed certificate's OCSP URL costs <= 0.5 s
        verify=VerifyConfig(revocation="offline", fetch_timeout_seconds=0.5),
        token_poll_seconds=5.0, token_reinit_seconds=60.0)
    agent = Agent(cfg)
    # a request naming an absent token rescans the slots at most every 0.5 s and waits for its turn: most fuzzed
    # requests name one, and would spend half a second asleep each
    agent.directory.min_interval = 0.0
    return AgentWorld(agent, AgentServicer(agent), serial, certificates, ca)


# -- the server -------------------------------------------------------------------------------------------------------


def resident_id(n: int) -> str:
    """A valid PRC resident ID number (ISO 7064 MOD 11-2 check digit), distinct for each ``n`` < 7,300,000."""
    import datetime as dt

    from server.identity.documents import mod11_2_check

    born = dt.date(1950, 1, 1) + dt.timedelta(days=n // 1000)
    body = f"110105{born:%Y%m%d}{n % 1000:03d}"
    return body + mod11_2_check(body)


@dataclass
class ServerWorld:
    token: Any
    store: Any
    keys: Any
    clock: Any
    outbox: Any
    identity: Any
    ca: Any
    enrollment: Any
    ocsp: Any
    tsa: Any
    operator: Any  # server.identity.Principal: the fuzzed calls' caller
    registrar: Any  # another operator: registers the fixture people (four eyes: fuzz-op may approve them)
    envelopes: Any = None  # server.envelopes.EnvelopeService
    identity_servicer: Any = None
    certificate_servicer: Any = None
    enrollment_servicer: Any = None
    envelope_servicer: Any = None
    placeholders: dict[str, str] = field(default_factory=dict)
    enroll_code_fresh: bool = False
    sign_codes_fresh: bool = False
    person_tls_pem: bytes = b""  # @p1's agent TLS client certificate (EnvelopeService's caller)
    operator_tls_pem: bytes = b""  # fuzz-op's TLS client certificate (bit 7 of an EnvelopeService input)
    contract_servicer: Any = None  # server.api.contracts.ContractServicer (its caller as EnvelopeService's)
    audit_servicer: Any = None  # server.api.audit.AuditServicer (its caller as EnvelopeService's)
    kiosk_servicer: Any = None  # server.api.kiosk.KioskServicer (its caller: a signing station of fuzz-op's org)
    station_tls_pem: bytes = b""  # the station's TLS client certificate (KioskService's caller)
    card_keys: dict[str, Any] = field(default_factory=dict)  # person id -> their signing key (minipki.SoftToken)
    notice_failures: list[BaseException] = field(default_factory=list)  # what the notice dispatcher refused
    last_agent_pem: bytes = b""
    _counter: Any = field(default_factory=lambda: itertools.count(1))
    _lock: Any = field(default_factory=threading.Lock)

    def resolve(self, text: str) -> str:
        """A placeholder's current value (ids are random), any other text as it is."""
        return self.placeholders.get(text, text)

    def resolve_bytes(self, data: bytes) -> bytes:
        """:data:`CARD`: @p1's signer certificate (DER); any other bytes as they are."""
        if data != CARD:
            return data
        rec = self.ca.status(int(self.placeholders[CERT_SERIAL], 16))
        return bytes(rec.der) if rec is not None else data

    def card_proof(self, certificate_der: bytes, signature: bytes) -> tuple[bytes, bytes]:
        """:data:`CARD_PROOF` in an OpenCardSessionRequest: a fresh statement (signet.cardproof) of the fuzz station
        about ``certificate_der``, and, when ``signature`` is :data:`CARD_PROOF` too, @p1's card's CAdES signature
        over it (any other ``signature`` as it is: a fresh statement with a wrong signature)."""
        import io

        from formats import TokenSigner, sign_detached
        from signet import cardproof

        statement = cardproof.statement(self.operator.org_id, STATION, certificate_der)
        key = self.card_keys.get(self.placeholders[PERSON_APPROVED])
        rec = self.ca.status(int(self.placeholders[CERT_SERIAL], 16))
        if signature == CARD_PROOF and key is not None and rec is not None:
            signature = sign_detached(io.BytesIO(statement), TokenSigner(key, "k", certificate=bytes(rec.der)))
        return statement, signature

    def _code(self, phone: str, digits: int) -> str:
        entry = self.outbox.list(to=phone, limit=1)[0]
        m = re.search(rf"\b(\d{{{digits}}})\b", self.outbox.read(entry.id).body)
        assert m is not None, "no code in the outbox message"
        return m.group(1)

    def _person(self, approve: bool) -> tuple[str, str]:
        """A new person: pending, or approved with a certificate (returns the id and the serial or "");
        an approved one's agent TLS client certificate becomes :attr:`last_agent_pem`."""
        from asn1crypto import pem

        from server.ca import db

        n = next(self._counter)
        phone = f"+86138{n:08d}"
        p = self.identity.register_person(self.registrar, legal_name="张三 Fuzz", document_type="prc_resident_id",
                                          document_number=resident_id(n), phone=phone, email=f"p{n}@example.com")
        if not approve:
            return p.id, ""
        self.identity.start_phone_verification(self.operator, p.id)
        self.identity.confirm_phone(self.operator, p.id, self._code(p.phone, 6))
        self.identity.approve(self.operator, p.id, evidence="fuzz fixture: documents checked")
        challenge = self.enrollment.start(p.id)
        card = _card_key()
        done = self.enrollment.enroll(p.id, self._code(p.phone, 8), _csr_of(card.private), new_csr(),
                                      challenge.code_id)
        self.card_keys[p.id] = card
        self.last_agent_pem = pem.armor("CERTIFICATE", done.agent_certificate_der)
        return p.id, db.serial_text(done.serial)

    def used(self, person_id: str) -> None:
        """A call named @p1: its enrollment code may be spent or locked; issue a new one before the next call."""
        if person_id == self.placeholders.get(PERSON_APPROVED):
            self.enroll_code_fresh = False

    def used_signing_codes(self) -> None:
        """A StartSigning or SubmitSignature: @p1's signing codes may be superseded or burnt; issue new ones."""
        self.sign_codes_fresh = False

    def as_person(self, person_id: str) -> Any:
        """The Principal a person's agent calls as (what the Authenticator makes of its TLS certificate)."""
        from server.identity import Principal, Role

        return Principal(self.operator.org_id, person_id, Role.AGENT)

    def deliver_notices(self) -> None:
        """Hand the queued envelope notices to the outbox (the dispatcher thread's pass); a notice it could not
        hand over (rendering a fuzzed title, ...) is a finding."""
        self.notice_failures.clear()
        self.envelopes.dispatcher.run_once()
        if self.notice_failures:
            from .fakes import Finding

            cause = self.notice_failures[0]
            self.notice_failures.clear()
            raise Finding(f"an envelope notice could not be handed to the outbox: {type(cause).__name__}: {cause}",
                          key="an envelope notice could not be handed to the outbox") from cause

    def refresh(self) -> None:
        """(Re)create whichever fixture the fuzzer used up: @p1 approved with a good certificate @s1, an agent TLS
        certificate and a live enrollment code (@e1 its id, @e2 the code), @p2 pending, @s2 a revoked certificate,
        and the envelopes (:meth:`_refresh_envelopes`)."""
        from server.identity import Status

        with self._lock:
            p1, s1 = self.placeholders.get(PERSON_APPROVED), self.placeholders.get(CERT_SERIAL)
            ok = False
            if p1 and s1:
                person = self.identity.get_person(self.operator, p1)
                rec = self.ca.status(int(s1, 16))
                ok = person.status is Status.APPROVED and rec is not None and not rec.revoked and self._caller_ok()
            if not ok:
                p1, s1 = self._person(approve=True)
                self.placeholders[PERSON_APPROVED], self.placeholders[CERT_SERIAL] = p1, s1
                self.person_tls_pem = self.last_agent_pem
                self.enroll_code_fresh = False
            p2 = self.placeholders.get(PERSON_PENDING)
            if not p2 or self.identity.get_person(self.operator, p2).status is not Status.PENDING:
                self.placeholders[PERSON_PENDING] = self._person(approve=False)[0]
            if REVOKED_SERIAL not in self.placeholders:
                _, s2 = self._person(approve=True)
                self.ca.revoke(int(s2, 16), "key_compromise")
                self.placeholders[REVOKED_SERIAL] = s2
            if not self.enroll_code_fresh:
                if self.store.query_one("SELECT person_id FROM enrollment_locks WHERE person_id = ?", (p1,)):
                    self.enrollment.unlock(self.operator, p1, "fuzz fixture: enrollment reopened")
                challenge = self.enrollment.start(p1)
                phone = self.identity.get_person(self.operator, p1).phone
                self.placeholders[ENROLL_CODE_ID], self.placeholders[ENROLL_CODE] = challenge.code_id, \
                    self._code(phone, 8)
                self.enroll_code_fresh = True
            self._refresh_envelopes(self.placeholders[PERSON_APPROVED])

    def _caller_ok(self) -> bool:
        """@p1's agent TLS certificate still authenticates (EnvelopeService's caller)."""
        from server.errors import ServerError

        from .fakes import FakeContext

        if self.envelope_servicer is None:
            return True
        try:
            self.envelope_servicer.auth.principal(FakeContext(auth={"x509_pem_cert": [self.person_tls_pem]}))
        except ServerError:
            return False
        return True

    def _refresh_envelopes(self, p1: str) -> None:
        """@p3 approved; @v1 sent by @p3, @p1's turn to sign, with live signing codes; @v2 a draft of @p1."""
        from server.envelopes import DocumentInput, EnvelopeState, RecipientInput, RecipientRole, RecipientState
        from server.envelopes import SigningMethod as Method
        from server.identity import Status

        p3 = self.placeholders.get(SENDER)
        if not p3 or self.identity.get_person(self.operator, p3).status is not Status.APPROVED:
            p3 = self.placeholders[SENDER] = self._person(approve=True)[0]
        v1 = self._live(ENVELOPE_SENT, EnvelopeState.SENT, p3)
        mine = v1.recipient_for(p1) if v1 is not None else None
        if v1 is None or mine is None or any(mine.id in d.signed_by for d in v1.documents) or \
                mine.state not in (RecipientState.NOTIFIED, RecipientState.VIEWED):
            v1 = self.envelopes.create(
                self.as_person(p3), title="Fuzz lease of the harbour crane", message="Please sign.", tags=["fuzz"],
                documents=[DocumentInput("lease.pdf", "application/pdf", envelope_pdf()),
                           DocumentInput("schedule.txt", "text/plain", ENVELOPE_TEXT)],
                recipients=[RecipientInput(p1, RecipientRole.SIGNER, 1, Method.TOKEN)])
            v1 = self.envelopes.send(self.as_person(p3), v1.id)
            self.envelopes.dispatcher.run_once()  # the "your turn" notice: @p1 is notified
            self.placeholders[ENVELOPE_SENT] = v1.id
            for name, sha, doc in ((SENT_PDF, SENT_PDF_SHA, v1.documents[0]), (SENT_TEXT, SENT_TEXT_SHA,
                                                                                 v1.documents[1])):
                self.placeholders[name], self.placeholders[sha] = doc.id, doc.current_sha256
            self.sign_codes_fresh = False
        if not self.sign_codes_fresh:
            phone = self.identity.get_person(self.operator, p1).phone
            for doc, (code_id, code) in SIGN_CODES.items():
                challenge = self.envelopes.start_signing(self.as_person(p1), v1.id, self.placeholders[doc],
                                                         self.placeholders[SENT_PDF_SHA if doc == SENT_PDF
                                                                           else SENT_TEXT_SHA])
                self.placeholders[code_id], self.placeholders[code] = challenge.code_id, self._code(phone, 6)
            self.sign_codes_fresh = True
        if self._live(ENVELOPE_DRAFT, EnvelopeState.DRAFT, p1) is None:
            v2 = self.envelopes.create(
                self.as_person(p1), title="Fuzz draft", documents=[DocumentInput("draft.pdf", "application/pdf",
                                                                                  envelope_pdf())],
                recipients=[RecipientInput(p3, RecipientRole.SIGNER, 1, Method.TOKEN)])
            self.placeholders[ENVELOPE_DRAFT], self.placeholders[DRAFT_PDF] = v2.id, v2.documents[0].id

    def _live(self, name: str, state: Any, sender: str) -> Any:
        """The envelope placeholder ``name`` stands for, if it is still in ``state`` and from ``sender``."""
        from server.envelopes import records
        from server.envelopes.model import as_of

        envelope_id = self.placeholders.get(name)
        env = records.load(self.store, envelope_id) if envelope_id else None
        if env is None:
            return None
        env = as_of(env, self.clock.now())
        return env if env.state is state and env.sender_person_id == sender else None

    def ocsp_placeholders(self) -> list[tuple[bytes, bytes]]:
        """Byte strings an OCSP request may carry instead of our issuer's CertID hashes and fixture serials:
        0xAA * 20|32 the issuer name hash (SHA-1|SHA-256), 0xBB * 20|32 its key hash, INTEGER 0xCC * 16 the
        good certificate @s1, INTEGER 0xDD * 16 the revoked @s2 (same lengths: the DER around stays valid)."""
        import hashlib

        from server.ca import Role

        issuing = self.keys[Role.SIGNING_CA].certificate
        subject, key_bits = issuing.subject.dump(), bytes(issuing.public_key["public_key"])
        out = []
        for h, size in (("sha1", 20), ("sha256", 32)):
            out.append((b"\xaa" * size, hashlib.new(h, subject).digest()))
            out.append((b"\xbb" * size, hashlib.new(h, key_bits).digest()))
        for marker, name in ((b"\xcc", CERT_SERIAL), (b"\xdd", REVOKED_SERIAL)):
            out.append((b"\x02\x10" + marker * 16, b"\x02\x10" + bytes.fromhex(self.placeholders[name])))
        return out


def _card_key() -> Any:
    """A person's signing key: a software P-256 key behind the token interface formats.TokenSigner uses."""
    from tests.formats.minipki import SoftToken

    return SoftToken()


def new_csr(cn: str = "ignored by the CA") -> bytes:
    """A PKCS#10 request of a fresh P-256 software key (the CA takes only the key from it)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return _csr_of(ec.generate_private_key(ec.SECP256R1()), cn)


def _csr_of(key: Any, cn: str = "ignored by the CA") -> bytes:
    """A PKCS#10 request of ``key`` (a cryptography EC private key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER)


class StubAuthenticator:
    """principal() is always the fuzz operator: the handlers' input handling is under test, not authentication
    (tests/e2e/test_server_authz.py covers who may call what)."""

    def __init__(self, principal: Any) -> None:
        self._principal = principal

    def principal(self, context: Any, rpc: str = "", request: object = None) -> Any:
        return self._principal


@functools.cache
def server_world() -> ServerWorld:
    env.softhsm()
    base = env.workdir() / "server"
    base.mkdir(parents=True, exist_ok=True)
    return build_server_world(env.new_token(SERVER_TOKEN), base)


def build_server_world(serial: str, base: Path) -> ServerWorld:
    """The server's parts over the (initialised, empty) token ``serial``, with state in ``base``."""
    from asn1crypto import pem

    from formats.policy import DEFAULT_REMOTE_POLICY, DEFAULT_SIGNING_POLICY
    from hsm import Hsm
    from server.api.auth import Authenticator
    from server.api.certificates import CertificateServicer
    from server.api.enrollment import EnrollmentServicer
    from server.api.envelopes import EnvelopeServicer
    from server.api.identity import IdentityServicer
    from server.blobs import FileBlobStore
    from server.ca import CertificateAuthority, ExternalRoots, OcspResponder, PkiUrls, db
    from server.ca import Role as KeyRole
    from server.clock import SystemClock
    from server.enrollment import Enrollment
    from server.envelopes import EnvelopeService, SigningRules
    from server.identity import IdentityService, Principal, Role
    from server.keys import KeySetPolicy, init_server_keys, load_server_keys
    from server.notify import OutboxChannel
    from server.sealing import AesGcmBox
    from server.store import open_store
    from server.tls import Caller, issue_client_certificate
    from server.tsa import TimeStampAuthority

    token = Hsm(pin_state=base / "pins.json").token(serial=serial)
    token.login(env.USER_PIN)
    store = open_store(str(base / "signet.sqlite"))
    clock = SystemClock()
    urls = PkiUrls("http://127.0.0.1:9")  # port 9: nothing listens, nothing here fetches
    init_server_keys(token, store, "Signet Fuzz Org", clock, urls=urls, policy=KeySetPolicy(family="ec"))
    keys = load_server_keys(token, store)
    box = AesGcmBox.generate()
    hmac_key = os.urandom(32)
    outbox = OutboxChannel(store, box, clock)
    # the send-rate limits would answer RESOURCE_EXHAUSTED to nearly every fuzzed call (and to the fixture's
    # second code to one phone): codes may be sent back to back here
    from server.otp import OtpPolicy

    identity = IdentityService(store, box, hmac_key, outbox, clock,
                               otp_policy=OtpPolicy(min_interval=timedelta(0), hourly_limit=10**6))
    ca = CertificateAuthority(keys, store, clock, urls)
    enrollment = Enrollment(identity, ca, keys, store, clock, outbox, hmac_key=hmac_key)
    org = identity.create_organisation("Fuzz Org")
    operator = Principal(org.id, "fuzz-op", Role.OPERATOR)
    registrar = Principal(org.id, "fuzz-registrar", Role.OPERATOR)
    world = ServerWorld(token, store, keys, clock, outbox, identity, ca, enrollment,
                        OcspResponder(keys, store, clock), TimeStampAuthority(keys, clock, store=store),
                        operator, registrar)
    auth = StubAuthenticator(operator)
    # committed with the seeds (tests/fuzz/make_seeds.py): a RegisterExternalCertificate seed chains to it
    roots = ExternalRoots(((FIXTURES / "external-root.der").read_bytes(),))
    world.identity_servicer = IdentityServicer(identity, auth, enrollment)  # type: ignore[arg-type]
    world.certificate_servicer = CertificateServicer(ca, identity, roots, auth)  # type: ignore[arg-type]
    # no throttle: every fuzzed call comes from one address, and the throttle is not what is under test
    world.enrollment_servicer = EnrollmentServicer(enrollment, requests_per_minute=10**9)
    # envelopes as signet-server builds them (server/runtime.py), notices to the outbox; no background threads:
    # server_handler runs the dispatcher's pass after each call (ServerWorld.deliver_notices)
    world.envelopes = EnvelopeService(
        store, FileBlobStore(base / "blobs"), identity, outbox, clock=clock,
        rules=SigningRules(trust_roots=(keys.certificate_der(KeyRole.SIGNING_ROOT),),
                           issuer_key_hash=ca.issuer_key_hash, token_policy_oid=DEFAULT_SIGNING_POLICY,
                           remote_policy_oid=DEFAULT_REMOTE_POLICY))
    dispatcher: Any = world.envelopes.dispatcher
    failed = dispatcher._failed

    def record_failure(notice: Any, error: Exception) -> None:
        world.notice_failures.append(error)
        failed(notice, error)

    dispatcher._failed = record_failure
    # the real Authenticator: callers present a TLS client certificate this server issued (FakeContext's
    # auth_context), @p1's agent certificate from its enrollment or the operator's
    world.envelope_servicer = EnvelopeServicer(
        world.envelopes, Authenticator(store, db.spki_hash(keys[KeyRole.TLS_CA].public_key_der)))
    # sealed contracts as signet-server builds them; nothing is sealed here (no background pass, and the TSA URL
    # answers nothing): ContractService meets unsealed envelopes, unknown ids and hostile queries
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from server.api.contracts import ContractServicer
    from server.archive import Archive
    from server.contracts import Contracts
    from server.envelopes.parties import Parties
    from server.runtime import seal_key
    from server.seal.sealer import Sealer
    from server.search import BlindIndex

    archive = Archive(token, store, base / "archive", kek_label=keys.archive_kek_label, clock=clock)
    sealer = Sealer(store, FileBlobStore(base / "blobs"), archive, Parties(identity), key=seal_key(token, keys),
                    timestamper=lambda: HTTPTimeStamper(f"{urls.base}/tsa", timeout=1),
                    trust_roots=(keys.certificate_der(KeyRole.SIGNING_ROOT),), clock=clock)
    world.contract_servicer = ContractServicer(
        Contracts(store, archive, BlindIndex(store, os.urandom(32)), sealer, keys, clock),
        Authenticator(store, db.spki_hash(keys[KeyRole.TLS_CA].public_key_der)))
    # the audit log's proofs as signet-server serves them: heads signed by the audit key on the token
    from server.api.audit import AuditServicer
    from server.audit.service import AuditQueries

    world.audit_servicer = AuditServicer(AuditQueries(store, keys, clock),
                                         Authenticator(store, db.spki_hash(keys[KeyRole.TLS_CA].public_key_der)))
    world.operator_tls_pem = pem.armor("CERTIFICATE", issue_client_certificate(
        keys, store, clock, urls, new_csr(), Caller(org.id, Role.OPERATOR, operator.subject),
        validity=timedelta(days=365)))
    # a signing station of fuzz-op's organisation, authenticated by the real Authenticator with card sessions
    from server.api.kiosk import KioskServicer
    from server.kiosk import CardSessions

    kiosk_auth = Authenticator(store, db.spki_hash(keys[KeyRole.TLS_CA].public_key_der))
    kiosk_auth.card_sessions = CardSessions.of(store, hmac_key, clock, identity, keys)
    world.kiosk_servicer = KioskServicer(kiosk_auth.card_sessions, kiosk_auth)
    world.station_tls_pem = pem.armor("CERTIFICATE", issue_client_certificate(
        keys, store, clock, urls, new_csr(), Caller(org.id, Role.STATION, STATION),
        validity=timedelta(days=365)))
    world.refresh()
    return world
