"""The signing path shared by every RPC: token, authorization, unlock, usage limit, token call, journal.

Order matters: the caller is authorized before a PIN is tried when the key id
alone decides the policy; the usage limit is reserved durably before the token
is asked; the deadline is checked after every wait, so a request whose deadline
passed while it was queued is never signed; the journal row is durable before a
signature is released.  A lone batch is split across ``sign_threads`` threads, each
with its own pooled session (the module is initialised for OS locking); a stream
instead submits whole batches to ``sign_threads`` signing lanes, so that both
sessions stay busy across batches without a fork and join per batch.
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

from hsm import HsmError, KeyNotFound, LoginRequired, SignScheme, Token, TokenRemoved
from hsm.signing import HASHES
from hsm.token import parse_key_id

from .config import KeyRule
from .errors import DeadlineExpired, InvalidRequest
from .journal import Entry, Journal, Ticket
from .policy import Authorizer
from .tokens import TokenDirectory
from .unlock import UnlockManager

log = logging.getLogger(__name__)

DeadlineCheck = Callable[[], bool]  # True while the caller still wants the result
MAX_BATCH = 1024


def _always() -> bool:
    return True


@dataclass(frozen=True)
class KeyRef:
    """A resolved key: its token, CKA_ID (hex) and the policy rule that governs it."""

    token: Token
    key_id: str
    rule: KeyRule | None

    @property
    def serial(self) -> str:
        return self.token.serial


class KeyMaterial:
    """(certificate, chain, SubjectPublicKeyInfo) per key for document signing: ~4 ms of token reads, cached
    for ``ttl`` seconds and dropped when the agent imports a certificate or generates a key on that token."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, tuple[bytes, list[bytes], bytes]]] = {}
        self._lock = threading.Lock()

    def get(self, ref: KeyRef) -> tuple[bytes, list[bytes], bytes]:
        from formats.errors import SigningError

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
        value = (cert, ref.token.chain(ref.key_id), ref.token.key(ref.key_id).public_key_der)
        with self._lock:
            self._cache[k] = (time.monotonic() + self.ttl, value)
        return value

    def forget(self, serial: str) -> None:
        with self._lock:
            for k in [k for k in self._cache if k[0] == serial]:
                del self._cache[k]


class SigningService:
    """Everything between an RPC handler and hsm.Token.sign_digest."""

    def __init__(self, directory: TokenDirectory, unlock: UnlockManager, auth: Authorizer, journal: Journal,
                 sign_threads: int = 2) -> None:
        self.directory = directory
        self.unlock = unlock
        self.auth = auth
        self.journal = journal
        self.sign_threads = sign_threads
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

    def _pre_authorize(self, caller: str, token: Token, key_id: str) -> tuple[bool, KeyRule | None]:
        """(decided, rule): decide before login when the key id alone is enough."""
        policy = self.auth.policy
        if not policy.may_use_any(caller):  # refused before any PIN is tried
            policy.authorize(caller, key_id, None)
        by_id = next((r for r in policy.rules if r.key_id == key_id and r.label is None), None)
        if by_id is not None or not policy.needs_label():
            return True, policy.authorize(caller, key_id, None)
        return False, None

    @contextmanager
    def key(self, caller: str, serial: str, label: str, key_id: str, pin: str | None,
            signatures: int) -> Iterator[KeyRef]:
        """Resolve, authorize, log in and reserve ``signatures`` for one operation on one key."""
        if not key_id:
            raise InvalidRequest("key_id is required (signet keys lists the key ids)")
        kid = parse_key_id(key_id).hex()
        token = self.directory.resolve(serial, label)
        decided, rule = self._pre_authorize(caller, token, kid)
        with self.unlock.use(caller, token, pin, signatures):
            if not decided:
                rule = self.auth.policy.authorize(caller, kid, self._label(token, kid))
            self.auth.usage.reserve(rule, signatures)
            ok = False
            try:
                yield KeyRef(token, kid, rule)
                ok = True
            finally:
                if not ok:
                    self.auth.usage.refund(rule, signatures)

    def call_token(self, caller: str, ref: KeyRef, pin: str | None, fn: Callable[[], object]) -> object:
        """Run one token operation; log in again once if the same token came back without its login.

        A key that signed before and now cannot be found usually means the token is being pulled out
        (SoftHSM loses the objects before the slot): that case gets a fresh rescan before it is called
        a missing key.  Keys never seen to work (typos) do not trigger rescans.
        """
        try:
            try:
                out = fn()
            except LoginRequired:
                self.unlock.relogin(caller, ref.token, pin)
                out = fn()
        except (KeyNotFound, HsmError) as e:
            if isinstance(e, LoginRequired):
                raise
            rescan = isinstance(e, KeyNotFound) and (ref.serial, ref.key_id) in self._worked
            raise self.directory.confirm_removed(ref.token, e, rescan=rescan) from e
        self._worked.add((ref.serial, ref.key_id))
        return out

    # -- digests ------------------------------------------------------------
    def sign_digests(
        self, caller: str, *, serial: str = "", label: str = "", key_id: str, digests: Sequence[bytes],
        hash_name: str = "sha256", scheme: SignScheme | None = None, pin: str | None = None,
        alive: DeadlineCheck = _always, durable: bool = True, split: bool = True,
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
        fmt = f"digest-{hash_name}"
        ref: KeyRef | None = None
        try:
            with self.key(caller, serial, label, key_id, pin, len(digests)) as ref:
                if not alive():
                    raise DeadlineExpired("the deadline passed before signing started; nothing was signed")
                sigs = self._sign_all(caller, ref, pin, digests, hash_name, scheme, split)
                docs = [d.hex() for d in digests] if hash_name == "sha256" else [""] * len(digests)
                ticket = self.journal.record_documents("sign_digest", caller, ref.serial, ref.key_id, fmt, docs,
                                                       wait=durable)
                return ref.serial, sigs, ticket
        except Exception as e:
            self._journal_failure("sign_digest", caller, serial, key_id, ref, fmt, e)
            raise

    def submit_digests(self, caller: str, *, failed: threading.Event | None = None,
                       **kw: object) -> Future[tuple[str, list[bytes], Ticket]]:
        """:meth:`sign_digests` (not durable, not split) on a signing lane: a stream keeps several in flight.

        ``failed`` is shared by the batches of one stream: a batch that fails sets it, and a batch that has not
        started by then is not signed at all (no signature, no usage, no journal row).
        """
        def job() -> tuple[str, list[bytes], Ticket]:
            if failed is not None and failed.is_set():
                raise InvalidRequest("an earlier batch of this stream failed; this batch was not signed")
            try:
                return self.sign_digests(caller, durable=False, split=False, **kw)  # type: ignore[arg-type]
            except BaseException:
                if failed is not None:
                    failed.set()
                raise

        return self._lanes.submit(job)

    def _sign_all(self, caller: str, ref: KeyRef, pin: str | None, digests: Sequence[bytes], hash_name: str,
                  scheme: SignScheme | None, split: bool = True) -> list[bytes]:
        def run(part: Sequence[bytes]) -> list[bytes]:
            return self.call_token(caller, ref, pin, lambda: ref.token.sign_digests(  # type: ignore[return-value]
                ref.key_id, part, hash_name=hash_name, scheme=scheme))

        parts = self.sign_threads if split and len(digests) >= 8 else 1
        if parts == 1:
            return run(digests)
        step = (len(digests) + parts - 1) // parts
        chunks = [digests[i:i + step] for i in range(0, len(digests), step)]
        futures = [self._pool.submit(run, c) for c in chunks[1:]]
        first = run(chunks[0])  # this thread takes a share instead of waiting idle
        return first + [s for f in futures for s in f.result()]

    def _journal_failure(self, op: str, caller: str, serial: str, key_id: str, ref: KeyRef | None, fmt: str,
                         e: Exception, doc_sha256: str = "") -> None:
        reason = getattr(e, "reason", type(e).__name__)
        if reason == "JOURNAL_FAILED":
            return
        try:
            self.journal.record([Entry(op, caller, ref.serial if ref else serial, ref.key_id if ref else key_id,
                                       doc_sha256, fmt, reason)])
        except Exception:  # noqa: BLE001 - a failure row must never mask the real error
            log.exception("journal failure row not recorded")

    def journal_ok(self, op: str, caller: str, ref: KeyRef, doc_sha256: str, fmt: str) -> None:
        self.journal.record([Entry(op, caller, ref.serial, ref.key_id, doc_sha256, fmt)])

    def journal_failure(self, op: str, caller: str, serial: str, key_id: str, ref: KeyRef | None, fmt: str,
                        e: Exception, doc_sha256: str = "") -> None:
        self._journal_failure(op, caller, serial, key_id, ref, fmt, e, doc_sha256)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lanes.shutdown(wait=False, cancel_futures=True)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["KeyRef", "SigningService", "TokenRemoved", "sha256_file"]
