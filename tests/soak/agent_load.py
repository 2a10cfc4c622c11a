"""The agent under crash soak: one signet-agent with a token and an enrolled-like key, loaded with unary
SignDigest (per-call PIN), SignDigestStream batches (an unlock grant) and SignPdf of small (inline) and ~1 MB
(streamed) PDFs.

After each kill -9 and restart: every acknowledged signature has its journal row with the exact digest the
token signed (for a PDF, the digest of the CMS signed attributes in the returned file, and the input's SHA-256);
the persisted usage count covers every acknowledged signature and every journalled one; journal.db and
usage.db pass integrity_check; the spool holds no job-* file and the state directory no temp file; no document
worker outlives the killed agent.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from scripts.processes import AgentProcess
from tests.e2e.agent_harness import SignerKey, big_pdf, digest_policy, provision_key, sign_pdf_call, with_grant

from .framework import AckLog, children, integrity, leftover_files, load_generator, orphans_of_kill, read_only, repeat

KEY_LABEL = "soak-key"
USAGE_LIMIT = 10**12
MAX_GRANT = 2**32 - 1  # UnlockResponse.signatures_left is a uint32
STREAM_BATCH = 32  # digests per SignDigestStream message
STREAM_MESSAGES = 8  # messages per stream
BIG_PDF = 1 << 20
POLICY = f"""
[unlock]
max_seconds = 86400
max_signatures = {MAX_GRANT}

[policy]
default_callers = ["local"]
admin_callers = ["local"]

{digest_policy(KEY_LABEL, extra=f"usage_limit = {USAGE_LIMIT}")}
"""
SIGNATURE_KINDS = ("sign_digest", "sign_stream", "sign_pdf", "sign_pdf_1mb")


class TokenLike(Protocol):
    label: str
    pin: str


@dataclass
class AgentState:
    """What the checks read after a restart (read-only): the key's journal rows by signed digest, usage count."""

    acked: AckLog
    journal: dict[str, dict[str, Any]]  # signed_digest -> row (signing rows of the soak key)
    journal_ok_signatures: int
    usage: int
    spool_leftovers: list[str]


@dataclass
class AgentSide:
    directory: Path
    token: TokenLike
    rng: random.Random
    name: str = "agent"
    acked: AckLog = field(default_factory=AckLog)
    agent: AgentProcess = field(init=False)
    key: SignerKey = field(init=False)
    public_key: ec.EllipticCurvePublicKey = field(init=False)
    docs: Path = field(init=False)
    _killed_children: list[int] = field(default_factory=list)
    _orphans: list[str] = field(default_factory=list)
    _spool_at_kill: int = 0

    def __post_init__(self) -> None:
        self.agent = AgentProcess(self.directory / "agent", POLICY)
        self.docs = self.directory / "docs"
        self.docs.mkdir(parents=True, exist_ok=True)

    def start(self) -> float:
        from tests.pki import make_ca

        t0 = time.monotonic()
        self.agent.start()
        took = time.monotonic() - t0
        self.key = provision_key(self.agent.stub(), self.token.label, self.token.pin, make_ca(), key_label=KEY_LABEL)
        pub = x509.load_der_x509_certificate(self.key.certificate_der).public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        self.public_key = pub
        return took

    def begin_round(self, number: int) -> None:
        self._orphans = []

    def kill(self) -> None:
        if self.agent.proc is None:
            return
        self._killed_children = children(self.agent.proc.pid)
        self.agent.kill()
        self._spool_at_kill = len(list((self.agent.state / "spool").glob("job-*")))

    def restart(self) -> float:
        self._orphans = orphans_of_kill(self._killed_children)
        t0 = time.monotonic()
        self.agent.start()
        return time.monotonic() - t0

    def state(self) -> AgentState:
        journal: dict[str, dict[str, Any]] = {}
        ok = 0
        with read_only(self.agent.state / "journal.db") as db:
            for r in db.execute("SELECT operation, outcome, key_id, document_sha256, signed_digest FROM journal "
                                "WHERE key_id = ? AND signed_digest != ''", (self.key.key_id,)):
                journal[r["signed_digest"]] = dict(r)
                ok += r["outcome"] == "ok"
        with read_only(self.agent.state / "usage.db") as db:
            row = db.execute("SELECT used FROM usage WHERE counter = ?", (f"label:{KEY_LABEL}",)).fetchone()
        spool = self.agent.state / "spool"
        return AgentState(self.acked, journal, ok, int(row["used"]) if row else 0,
                          sorted(p.name for p in spool.glob("job-*")))

    def invariants(self, state: AgentState) -> list[str]:
        problems = list(self._orphans)
        for db in ("journal.db", "usage.db"):
            problems += integrity(self.agent.state / db)
        acked = len(self.acked.of(*SIGNATURE_KINDS))
        if state.usage < acked:
            problems.append(f"usage.db counts {state.usage} signatures, fewer than the {acked} acknowledged")
        if state.usage < state.journal_ok_signatures:
            problems.append(f"usage.db counts {state.usage} signatures, fewer than the {state.journal_ok_signatures} "
                            "in the journal (a signature was made without a durable reservation)")
        if state.spool_leftovers:
            problems.append(f"spool not emptied at restart: {state.spool_leftovers[:5]}")
        leftovers = leftover_files(self.agent.state)
        if leftovers:
            problems.append(f"temporary files left in the state directory: {leftovers[:5]}")
        return problems

    def round_info(self) -> dict[str, Any]:
        return {"children at kill": len(self._killed_children), "spool files at kill": self._spool_at_kill}

    def close(self) -> None:
        if self.agent.alive:
            rc = self.agent.stop()
            if rc != 0:
                raise RuntimeError(f"the agent exited {rc} on SIGTERM:\n{self.agent.log()[-2000:]}")

    # -- helpers for the generators --------------------------------------------------------------------------
    def selector(self) -> Any:
        from signet.v1 import agent_pb2

        return agent_pb2.TokenSelector(label=self.token.label)

    def verify(self, signature: bytes, digest: bytes) -> None:
        try:
            self.public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            raise AssertionError(f"acknowledged signature over {digest.hex()} does not verify") from None


def _journal_problems(state: AgentState, kinds: tuple[str, ...], operation: str) -> list[str]:
    problems = []
    for a in state.acked.of(*kinds):
        row = state.journal.get(a.key)
        if row is None:
            problems.append(f"LOST {a.kind} (round {a.round}): no journal row with signed_digest {a.key}")
        elif row["operation"] != operation or row["outcome"] != "ok":
            problems.append(f"{a.kind} (round {a.round}) {a.key}: journal row says {row['operation']}/"
                            f"{row['outcome']}")
        elif "document_sha256" in a.data and row["document_sha256"] != a.data["document_sha256"]:
            problems.append(f"{a.kind} (round {a.round}) {a.key}: journal document_sha256 {row['document_sha256']} "
                            f"is not the signed document's {a.data['document_sha256']}")
    return problems


@load_generator("agent", "sign_digest")
class UnaryDigests:
    """Unary SignDigest with a per-call PIN; acknowledged = the response arrived and its signature verifies."""

    name = "sign_digest"
    threads = 2

    def __init__(self, side: AgentSide) -> None:
        self.side = side

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        from signet.v1 import agent_pb2

        side = self.side
        stub = side.agent.stub()
        cred = agent_pb2.PinCredential(pin=side.token.pin)

        def step() -> None:
            digest = os.urandom(32)
            r = stub.SignDigest(agent_pb2.SignDigestRequest(token=side.selector(), key_id=side.key.key_id,
                                                            digest=digest, credential=cred), timeout=60)
            side.verify(r.signature, digest)
            acked.ack(self.name, digest.hex())

        repeat(stop, acked, self.name, step)

    def check(self, state: AgentState) -> list[str]:
        return _journal_problems(state, (self.name,), "sign_digest")


@load_generator("agent", "sign_stream")
class StreamedDigests:
    """SignDigestStream under an unlock grant, STREAM_MESSAGES batches of STREAM_BATCH digests per stream; each
    response acknowledges its batch."""

    name = "sign_stream"
    threads = 1

    def __init__(self, side: AgentSide) -> None:
        self.side = side

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        from signet.v1 import agent_pb2

        side = self.side
        stub = side.agent.stub()
        grant: list[str] = []

        def step() -> None:
            if not grant:  # the grant of the agent that was killed is gone with it
                grant.append(stub.Unlock(agent_pb2.UnlockRequest(token=side.selector(), pin=side.token.pin),
                                         timeout=60).grant)
            batches = [[os.urandom(32) for _ in range(STREAM_BATCH)] for _ in range(STREAM_MESSAGES)]

            def requests() -> Any:
                for i, batch in enumerate(batches):
                    if i == 0:
                        yield agent_pb2.SignDigestStreamRequest(token=side.selector(), key_id=side.key.key_id,
                                                                digests=batch, request_id=i)
                    else:
                        yield agent_pb2.SignDigestStreamRequest(digests=batch, request_id=i)

            for resp in stub.SignDigestStream(requests(), metadata=with_grant(grant[0]), timeout=60):
                batch = batches[resp.request_id]
                if len(resp.signatures) != len(batch):
                    raise AssertionError(f"{len(resp.signatures)} signatures for {len(batch)} digests")
                for d, s in zip(batch, resp.signatures, strict=True):
                    side.verify(s, d)
                    acked.ack(self.name, d.hex())

        repeat(stop, acked, self.name, step)

    def check(self, state: AgentState) -> list[str]:
        return _journal_problems(state, (self.name,), "sign_digest")


_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def signed_attrs_digest(pdf: bytes, public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the DER SET of signed attributes of the last signature in ``pdf`` -- the digest the token
    signed -- after checking that the signature value verifies over them."""
    from asn1crypto import cms

    a, b, c, _ = (int(x) for x in _BYTE_RANGE.findall(pdf)[-1])
    hex_contents = pdf[a + b:c].strip().lstrip(b"<").rstrip(b">")
    info = cms.ContentInfo.load(bytes.fromhex(hex_contents.decode("ascii")))  # the zero padding is ignored
    signer = info["content"]["signer_infos"][0]
    tagged = signer["signed_attrs"].dump()
    signed = b"\x31" + tagged[1:]  # [0] IMPLICIT -> SET OF: what the signature covers
    try:
        public_key.verify(signer["signature"].native, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the returned PDF's signature does not verify over its signed attributes") from None
    return hashlib.sha256(signed).hexdigest()


@load_generator("agent", "sign_pdf")
class PdfDocuments:
    """SignPdf of small PDFs (inline, one message each way) and ~1 MB PDFs (streamed in chunks through the
    spool), with a per-call PIN; acknowledged = the signed file and its result arrived."""

    name = "sign_pdf"
    threads = 2

    def __init__(self, side: AgentSide) -> None:
        self.side = side
        self._rng = random.Random(side.rng.random())
        self._lock = threading.Lock()

    def _pick(self) -> tuple[bool, int]:
        """(big, pages) of the next document: about a third are ~1 MB."""
        with self._lock:
            return self._rng.random() < 0.35, self._rng.randint(1, 3)

    def run(self, stop: threading.Event, acked: AckLog) -> None:
        from agent.client import AgentClient, Target, TokenRef
        from agent.grantfiles import GrantFiles
        from formats.samplepdf import contract_pdf_bytes

        side = self.side
        stub = side.agent.stub()
        client = AgentClient(Target(socket=side.agent.socket), GrantFiles(side.directory / "grants"))

        def step() -> None:
            path = side.docs / f"{uuid.uuid4().hex}.pdf"
            try:
                big, pages = self._pick()
                if big:
                    big_pdf(path, BIG_PDF, title=f"Soak contract {path.stem}")
                    result, out = sign_pdf_call(stub, path, side.token.label, side.key.key_id, side.token.pin,
                                                timeout=120)
                    kind = "sign_pdf_1mb"
                else:
                    path.write_bytes(contract_pdf_bytes(f"Soak contract {path.stem}", ["Alice Soak", "Bob Soak"],
                                                        pages=pages))
                    result, out = client.sign_to_bytes(path, pdf=True, token=TokenRef(label=side.token.label),
                                                       key_id=side.key.key_id, pin=side.token.pin, timeout=120)
                    kind = "sign_pdf"
                doc_sha = hashlib.sha256(path.read_bytes()).hexdigest()
            finally:
                path.unlink(missing_ok=True)
            if result is None or result.document_sha256 != doc_sha or result.output_sha256 != \
                    hashlib.sha256(out).hexdigest():
                raise AssertionError("SignPdf result does not describe the document sent and the file returned")
            acked.ack(kind, signed_attrs_digest(out, side.public_key), document_sha256=doc_sha)

        try:
            repeat(stop, acked, self.name, step)
        finally:
            client.close()

    def check(self, state: AgentState) -> list[str]:
        return _journal_problems(state, ("sign_pdf", "sign_pdf_1mb"), "sign_pdf")
