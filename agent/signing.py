"""The signing path shared by every RPC: token, authorization, grant, usage limit, confirmation, token, journal.

Order matters: the caller is authorized before a PIN is tried when the key id alone decides the policy; a
raw digest is refused unless the key's policy allows digests (a digest shows the signer nothing); the usage
limit is reserved durably before the token is asked; the signing certificate's revocation status is asked
of its CA and the key's confirmation program (if any) must approve before the token signs; the deadline is
checked after every wait, so a request whose deadline passed while it was queued is never signed; the journal
row, with the exact digest signed, is durable before a signature is released.  A lone batch is split across
``sign_threads`` threads, each with its own pooled session; a stream instead submits whole batches to
``sign_threads`` signing lanes, so that both sessions stay busy across batches.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from formats.errors import SigningError
from hsm import HsmError, KeyNotFound, LoginRequired, SignScheme, Token
from hsm.signing import HASHES
from hsm.token import parse_key_id

from .config import Confirmation, KeyRule
from .confirm import ConfirmRequest, ask
from .errors import DeadlineExpired, DigestsNotAllowed, InvalidRequest
from .journal import Entry, Journal, Ticket
from .policy import Authorizer
from .revocation import OwnCertificateStatus
from .tokens import TokenDirectory
from .unlock import UnlockManager

T = TypeVar("T")

log = logging.getLogger(__name__)

DeadlineCheck = Callable[[], bool]  # True while the caller still wants the result
MAX_BATCH = 1024


def _always() -> bool:
    return True


@dataclass
class KeyRef:
    """A resolved key: its token, CKA_ID (hex), the policy rule that governs it, and how many of the reserved
    signatures the token has made (those are never refunded, whatever fails afterwards)."""

    token: Token
    key_id: str
    rule: KeyRule | None
    spent: int = 0

    @property
    def serial(self) -> str:
        return self.token.serial


@dataclass(frozen=True)
class Material:
    """What document signing needs of a key besides the token: certificate, chain, public key."""

    certificate: bytes
    chain: tuple[bytes, ...]
    spki: bytes
    subject: str


class KeyMaterial:
    """:class:`Material` per key: ~4 ms of token reads, cached for ``ttl`` seconds and dropped when the agent
    imports a certificate or generates a key on that token."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Material]] = {}
        self._lock = threading.Lock()

    def get(self, ref: KeyRef) -> Material:
        from asn1crypto import x509

        k = (ref.serial, ref.key_id)
        with self._lock:
            hit = self._cache.get(k)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        cert = ref.token.certificate(ref.key_id)
        if cert is None:
            info = ref.token.key(ref.key_id)  # NOT_FOUND for an unknown key, before the certificate advice
            raise SigningError(f"key {info.key_id} has no certificate on the token: request one (signet csr) and "
                               "import it (signet import-cert) first")
        subject = x509.Certificate.load(cert).subject.human_friendly
        value = Material(cert, tuple(ref.token.chain(ref.key_id)), ref.token.key(ref.key_id).public_key_der, subject)
        with self._lock:
            self._cache[k] = (time.monotonic() + self.ttl, value)
        return value

    def forget(self, serial: str) -> None:
        with self._lock:
            for k in [k for k in self._cache if k[0] == serial]:
                del self._cache[k]


class BatchSkipped(InvalidRequest):
    """A batch of a stream that was not signed because another batch of the stream had failed."""


@dataclass(frozen=True)
class Shown:
    """What the signer is shown (and the journal records) for one document signature."""

    operation: str  # sign_pdf | sign_detached
    file_name: str
    sha256: str
    size: int


class SigningService:
    """Everything between an RPC handler and hsm.Token.sign_digest."""

    def __init__(self, directory: TokenDirectory, unlock: UnlockManager, auth: Authorizer, journal: Journal,
                 sign_threads: int = 2, *, material: KeyMaterial | None = None,
                 status: OwnCertificateStatus | None = None, default_confirm: Confirmation | None = None) -> None:
        self.directory = directory
        self.unlock = unlock
        self.auth = auth
        self.journal = journal
        self.sign_threads = sign_threads
        self.material = material or KeyMaterial()
        self.status = status
        self.default_confirm = default_confirm
        self._pool = ThreadPoolExecutor(max_workers=max(1, sign_threads - 1), thread_name_prefix="sign")
        self._lanes = ThreadPoolExecutor(max_workers=max(1, sign_threads), thread_name_prefix="sign-lane")
        self._labels: dict[tuple[str, str], str] = {}
        self._labels_lock = threading.Lock()
        self._worked: set[tuple[str, str]] = set()  # (serial, key id) that have signed in this process

    # -- keys and policy ----------------------------------------------------
    def _label(self, token: Token, key_id: str) -> str | None:
        k = (token.serial, key_id)
        with self._labels_lock:
            label = self._labels.get(k)
        if label is None:
            label = token.key(key_id).label
            with self._labels_lock:
                self._labels[k] = label
        return label

    def _pre_authorize(self, caller: str, key_id: str) -> tuple[bool, KeyRule | None]:
        """(decided, rule): decide before login when the key id alone is enough."""
        policy = self.auth.policy
        if not policy.may_use_any(caller):  # refused before any PIN is tried
            policy.authorize(caller, key_id, None)
        by_id = next((r for r in policy.rules if r.key_id == key_id and r.label is None), None)
        if by_id is not None or not policy.needs_label():
            return True, policy.authorize(caller, key_id, None)
        return False, None

    def precheck(self, caller: str, serial: str, label: str, key_id: str, pin: str | None,
                 handle: str | None) -> None:
        """What can be refused before a document is uploaded: the token, the caller's right to the key (when the
        key id decides), and the presence of a PIN or of a live grant for this caller."""
        if not key_id:
            raise InvalidRequest("key_id is required (signet keys lists the key ids)")
        kid = parse_key_id(key_id).hex()
        token = self.directory.resolve(serial, label)
        self._pre_authorize(caller, kid)
        if not pin and self.unlock.grant_left(caller, handle, token.serial) is None:
            raise LoginRequired(f"token {token.label or token.serial} is not unlocked for this call: Unlock it "
                                "(signet unlock) and present the grant handle, or give a PIN with the request")

    @contextmanager
    def key(self, caller: str, serial: str, label: str, key_id: str, pin: str | None, *, signatures: int,
            handle: str | None = None) -> Iterator[KeyRef]:
        """Resolve, authorize, log in and reserve ``signatures`` for one operation on one key."""
        if not key_id:
            raise InvalidRequest("key_id is required (signet keys lists the key ids)")
        kid = parse_key_id(key_id).hex()
        token = self.directory.resolve(serial, label)
        decided, rule = self._pre_authorize(caller, kid)
        with self.unlock.use(caller, token, pin, signatures, handle):
            if not decided:
                rule = self.auth.policy.authorize(caller, kid, self._label(token, kid))
            self.auth.usage.reserve(rule, signatures)
            ref = KeyRef(token, kid, rule)
            ok = False
            try:
                yield ref
                ok = True
            finally:
                if not ok:
                    self.auth.usage.refund(rule, signatures - ref.spent)

    def confirmation(self, ref: KeyRef) -> Confirmation | None:
        if ref.rule is not None and ref.rule.confirm is not None:
            return ref.rule.confirm
        return self.default_confirm

    def before_signing(self, caller: str, ref: KeyRef, request: ConfirmRequest, material: Material | None) -> None:
        """The checks between a reservation and the token: the certificate is not revoked, the signer said yes."""
        if self.status is not None and material is not None:
            self.status.require_good(material.certificate, list(material.chain))
        confirm = self.confirmation(ref)
        if confirm is not None:
            ask(confirm, request)

    def call_token(self, ref: KeyRef, fn: Callable[[], T]) -> T:
        """Run one token operation; a failure that looks like a removal is confirmed (or not) by the directory.

        A key that signed before and now cannot be found usually means the token is being pulled out (SoftHSM
        loses the objects before the slot): that case gets a fresh rescan before it is called a missing key.
        """
        try:
            out = fn()
        except LoginRequired:
            raise
        except HsmError as e:
            rescan = isinstance(e, KeyNotFound) and (ref.serial, ref.key_id) in self._worked
            raise self.directory.confirm_removed(ref.token, e, rescan=rescan) from e
        self._worked.add((ref.serial, ref.key_id))
        return out

    def sign_document_digest(self, caller: str, ref: KeyRef, shown: Shown, material: Material, *, digest: bytes,
                             hash_name: str, pages: int | None, alive: DeadlineCheck) -> tuple[bytes, Ticket]:
        """The one token signature of a document job: checks, token, journal row (returned, not yet waited for)."""
        self.before_signing(caller, ref, ConfirmRequest(
            operation=shown.operation, file_name=shown.file_name, sha256=shown.sha256, size=shown.size, pages=pages,
            signer_subject=material.subject, caller=caller, token=ref.token.label, key_id=ref.key_id), material)
        if not alive():
            raise DeadlineExpired("the deadline passed before signing; nothing was signed")
        sig = self.call_token(ref, lambda: ref.token.sign_digest(ref.key_id, digest, hash_name=hash_name))
        ref.spent += 1
        fmt = "pades" if shown.operation == "sign_pdf" else "cades-detached"
        ticket = self.journal.record([Entry(shown.operation, caller, ref.serial, ref.key_id, shown.sha256, fmt,
                                            signed_digest=digest.hex())], wait=False)
        return sig, ticket

    # -- digests ------------------------------------------------------------
    def sign_digests(
        self, caller: str, *, serial: str = "", label: str = "", key_id: str, digests: Sequence[bytes],
        hash_name: str = "sha256", scheme: SignScheme | None = None, pin: str | None = None,
        handle: str | None = None, alive: DeadlineCheck = _always, durable: bool = True, split: bool = True,
    ) -> tuple[str, list[bytes], Ticket]:
        """Sign every digest with one key; returns (token serial, signatures, journal ticket) or raises.

        With ``durable`` the journal rows are on disk on return; else the caller must ``ticket.wait()``
        before releasing the signatures (lets a stream sign its next batch during the fsync).  With
        ``split`` a batch of 8 or more is shared among ``sign_threads`` sessions.
        """
        if not digests:
            raise InvalidRequest("no digest to sign")
        if len(digests) > MAX_BATCH:
            raise InvalidRequest(f"at most {MAX_BATCH} digests per request")
        size = HASHES.get(hash_name)
        bad = next((i for i, d in enumerate(digests) if len(d) != size), None)
        if bad is not None:
            raise InvalidRequest(f"digest {bad} is {len(digests[bad])} bytes; a {hash_name} digest is {size}")
        with self.key(caller, serial, label, key_id, pin, signatures=len(digests), handle=handle) as ref:
            if ref.rule is None or not ref.rule.allow_digests:
                raise DigestsNotAllowed(f"key {ref.key_id} does not sign raw digests (a digest shows the signer "
                                        "nothing): sign documents with SignPdf/SignDetached, or set allow_digests = "
                                        "true in the key's policy")
            if self.confirmation(ref) is not None:
                batch = b"".join(digests)
                self.before_signing(caller, ref, ConfirmRequest(
                    operation="sign_digest", file_name="", sha256=hashlib.sha256(batch).hexdigest()
                    if len(digests) > 1 else digests[0].hex(), size=len(digests), pages=None, signer_subject="",
                    caller=caller, token=ref.token.label, key_id=ref.key_id), None)
            if not alive():
                raise DeadlineExpired("the deadline passed before signing started; nothing was signed")
            sigs = self._sign_all(ref, digests, hash_name, scheme, split)
            ref.spent = len(sigs)
            ticket = self.journal.record_digests("sign_digest", caller, ref.serial, ref.key_id, f"digest-{hash_name}",
                                                 [d.hex() for d in digests], wait=durable)
            return ref.serial, sigs, ticket

    def submit_digests(self, caller: str, *, failed: threading.Event | None = None,
                       **kw: Any) -> Future[tuple[str, list[bytes], Ticket]]:
        """:meth:`sign_digests` (not durable, not split) on a signing lane: a stream keeps several in flight.

        ``failed`` is shared by the batches of one stream: a batch that fails sets it, and a batch that has not
        started by then is not signed at all (no signature, no usage, no journal row).
        """
        def job() -> tuple[str, list[bytes], Ticket]:
            if failed is not None and failed.is_set():
                raise BatchSkipped("an earlier batch of this stream failed; this batch was not signed")
            try:
                return self.sign_digests(caller, durable=False, split=False, **kw)
            except BaseException:
                if failed is not None:
                    failed.set()
                raise

        return self._lanes.submit(job)

    def _sign_all(self, ref: KeyRef, digests: Sequence[bytes], hash_name: str, scheme: SignScheme | None,
                  split: bool = True) -> list[bytes]:
        def run(part: Sequence[bytes]) -> list[bytes]:
            return self.call_token(ref, lambda: ref.token.sign_digests(
                ref.key_id, part, hash_name=hash_name, scheme=scheme))

        parts = self.sign_threads if split and len(digests) >= 8 else 1
        if parts == 1:
            return run(digests)
        step = (len(digests) + parts - 1) // parts
        chunks = [digests[i:i + step] for i in range(0, len(digests), step)]
        futures = [self._pool.submit(run, c) for c in chunks[1:]]
        first = run(chunks[0])  # this thread takes a share instead of waiting idle
        return first + [s for f in futures for s in f.result()]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lanes.shutdown(wait=False, cancel_futures=True)
