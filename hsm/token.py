"""A token and what can be done with it: login, keys, signing, CSRs, certificates, wrapping."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pkcs11

from . import certs, csr, keys, rv, signing, wrap
from .errors import HsmError, KeyNotFound, SigningFailed, WrapError
from .keys import KeyAlgorithm, KeyInfo
from .sessions import PooledSession, SessionPool
from .signing import SignScheme
from .tokens import TokenInfo
from .wrap import WrappedKey


def parse_key_id(key_id: str | bytes) -> bytes:
    if isinstance(key_id, bytes):
        return key_id
    try:
        return bytes.fromhex(key_id)
    except ValueError:
        raise KeyNotFound(f"key id {key_id!r} is not hex (list keys to see their ids)") from None


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """No python-pkcs11 exception leaves the layer."""
    try:
        yield
    except HsmError:
        raise
    except rv.GONE_ERRORS:
        raise  # SessionPool.session decides what they mean (TokenRemoved, KeyNotFound, or a retry)
    except pkcs11.PKCS11Error as e:
        raise HsmError(f"{what} failed: {type(e).__name__} {e}".strip()) from e


class Token:
    """Operations on one token (identified by serial); thread-safe."""

    def __init__(self, pool: SessionPool) -> None:
        self.pool = pool
        self.serial = pool.serial
        self._algos: dict[bytes, KeyAlgorithm] = {}
        self._algos_lock = threading.Lock()
        # SoftHSM 2.6 is not safe for object management in parallel sessions of one process: a key generated
        # while another session searches or reads attributes fails (GeneralError, TemplateInconsistent,
        # FunctionFailed) or makes the reader fail (GeneralError, AttributeValueInvalid); measured within a
        # few dozen generations.  Searches, reads, creations and deletions of objects take this lock (after
        # borrowing their session); signing with a looked-up key does not.
        self._objects = threading.Lock()
        self._plans: dict[bytes, dict[tuple[str, str | None], signing.SignPlan]] = {}
        self._raw = pool.module.raw

    @property
    def label(self) -> str:
        return self.pool.label

    def info(self) -> TokenInfo:
        return self.pool.info()

    # -- login ----------------------------------------------------------
    def login(self, pin: str) -> None:
        self.pool.login(pin)

    def logout(self) -> None:
        self.pool.logout()

    @property
    def logged_in(self) -> bool:
        return self.pool.logged_in

    def pin_tries_left(self) -> int:
        return self.pool.guard.remaining(self.serial)

    # -- keys -----------------------------------------------------------
    def generate_key(self, algorithm: KeyAlgorithm | str, label: str) -> KeyInfo:
        algo = algorithm if isinstance(algorithm, KeyAlgorithm) else KeyAlgorithm.parse(algorithm)
        with self.pool.session() as s, self._objects, _translated(f"generating a {algo.name} key on {self.label}"):
            key_id = keys.generate(s.session, algo, label)
            _, spki = keys.public_key_info(keys.find_public(s.session, key_id))
        return KeyInfo(self.serial, key_id.hex(), label, algo, spki, None)

    def keys(self) -> list[KeyInfo]:
        with self.pool.session() as s, self._objects, _translated(f"listing keys on {self.label}"):
            return keys.list_keys(s.session, self.serial)

    def key(self, key_id: str | bytes | None = None, label: str | None = None) -> KeyInfo:
        kid = parse_key_id(key_id) if key_id is not None else None
        with self.pool.session() as s, self._objects, _translated(f"reading key on {self.label}"):
            priv = keys.find_private(s.session, key_id=kid, label=label)
            kid = bytes(priv[pkcs11.Attribute.ID])
            algo, spki = keys.public_key_info(keys.find_public(s.session, kid))
            cert = certs.find_certificate(s.session, kid)
            return KeyInfo(self.serial, kid.hex(), priv[pkcs11.Attribute.LABEL], algo, spki, cert)

    def delete_key(self, key_id: str | bytes) -> None:
        kid = parse_key_id(key_id)
        with self.pool.session() as s, self._objects, _translated(f"deleting key {kid.hex()} on {self.label}"):
            keys.delete(s.session, kid)
        with self._algos_lock:
            self._algos.pop(kid, None)
            self._plans.pop(kid, None)

    def algorithm(self, key_id: str | bytes) -> KeyAlgorithm:
        kid = parse_key_id(key_id)
        algo = self._algos.get(kid)
        if algo is None:
            algo = self.key(kid).algorithm
            with self._algos_lock:
                self._algos[kid] = algo
        return algo

    # -- signing --------------------------------------------------------
    def _private(self, s: PooledSession, kid: bytes) -> signing.SessionKey:
        key = s.cache.get(kid)
        if key is None:
            with self._objects:
                key = s.cache[kid] = signing.SessionKey(keys.find_private(s.session, key_id=kid), s.session.handle)
        return key

    def _plan(self, kid: bytes, hash_name: str, scheme: SignScheme | None) -> signing.SignPlan:
        # keyed without hashing enum members (a Python-level __hash__): this runs once per call
        per_key = self._plans.get(kid)
        k = (hash_name, None if scheme is None else scheme._value_)
        plan = per_key.get(k) if per_key is not None else None
        if plan is None:
            algo = self.algorithm(kid)
            plan = signing.plan(algo, scheme or SignScheme.default_for(algo), hash_name)
            self._plans.setdefault(kid, {})[k] = plan
        return plan

    def sign_digests(
        self, key_id: str | bytes, digests: Sequence[bytes], *, hash_name: str = "sha256",
        scheme: SignScheme | None = None,
    ) -> list[bytes]:
        """Sign every digest with one key, in order: one borrowed session and one key lookup for the batch.

        All or nothing: a failure part-way (TokenRemoved, KeyNotFound, SigningFailed) raises and returns no
        signature.  Every digest is checked before the token is asked.
        """
        kid = key_id if type(key_id) is bytes else parse_key_id(key_id)
        try:
            plan = self._plan(kid, hash_name, scheme)
            signing.check_digests(plan, digests)
            if not digests:
                return []

            return self.pool.run(self._sign_batch, kid, plan, digests, failure=SigningFailed)
        except KeyNotFound:
            with self._algos_lock:
                self._algos.pop(kid, None)  # deleted (maybe elsewhere): look it up afresh next time
                self._plans.pop(kid, None)
            raise

    def _sign_batch(
        self, s: PooledSession, kid: bytes, plan: signing.SignPlan, digests: Sequence[bytes]
    ) -> list[bytes]:
        key = s.cache.get(kid)
        if key is None:
            key = self._private(s, kid)
        try:
            return signing.sign_raw(self._raw, key, plan, digests)
        except rv.GONE_ERRORS:
            raise  # the pool decides: removed token, a stale handle (KeyNotFound), or a device error (retry)
        except pkcs11.PKCS11Error as e:
            s.cache.pop(kid, None)
            if isinstance(e, signing.UnfinishedOperation):
                s.discard = True
            raise SigningFailed(f"signing with key {kid.hex()} on {self.label} failed: {type(e).__name__}") from e

    def sign_digest(
        self, key_id: str | bytes, dgst: bytes, *, hash_name: str = "sha256", scheme: SignScheme | None = None
    ) -> bytes:
        return self.sign_digests(key_id, (dgst,), hash_name=hash_name, scheme=scheme)[0]

    def sign(
        self, key_id: str | bytes, data: bytes, *, hash_name: str = "sha256", scheme: SignScheme | None = None
    ) -> bytes:
        return self.sign_digest(key_id, signing.digest(data, hash_name), hash_name=hash_name, scheme=scheme)

    # -- certificates -----------------------------------------------------
    def create_csr(
        self,
        key_id: str | bytes,
        subject: dict[str, str],
        *,
        dns_names: tuple[str, ...] | list[str] = (),
        emails: tuple[str, ...] | list[str] = (),
    ) -> bytes:
        info = self.key(key_id)
        return csr.build(
            subject, info.public_key_der, info.algorithm,
            lambda data: self.sign(info.key_id, data, hash_name="sha256"),
            dns_names=dns_names, emails=emails,
        )

    def import_certificate(self, key_id: str | bytes, der: bytes, chain: list[bytes] | None = None) -> None:
        info = self.key(key_id)
        with self.pool.session() as s, self._objects, _translated(f"importing a certificate onto {self.label}"):
            certs.import_certificate(s.session, bytes.fromhex(info.key_id), info.public_key_der,
                                     info.label, der, list(chain or []))

    def certificate(self, key_id: str | bytes) -> bytes | None:
        with self.pool.session() as s, self._objects, _translated(f"reading a certificate on {self.label}"):
            return certs.find_certificate(s.session, parse_key_id(key_id))

    def holder_certificates(self) -> list[tuple[str, bytes]]:
        """(key id hex, DER) of the certificates next to the token's key pairs, read without a login."""
        with self.pool.session(need_login=False) as s, self._objects, \
                _translated(f"reading certificates on {self.label}"):
            return [(kid.hex(), der) for kid, der in certs.holder_certificates(s.session)]

    def chain(self, key_id: str | bytes) -> list[bytes]:
        """The CA certificates stored on the token above this key's certificate."""
        with self.pool.session() as s, self._objects, _translated(f"reading certificates on {self.label}"):
            leaf = certs.find_certificate(s.session, parse_key_id(key_id))
            return certs.read_chain(s.session, leaf) if leaf else []

    # -- key wrapping ------------------------------------------------------
    def generate_kek(self, label: str, bits: int = 256) -> None:
        with self.pool.session() as s, self._objects, _translated(f"generating a KEK on {self.label}"):
            wrap.generate_kek(s.session, label, bits)

    def wrap_key(self, kek_label: str, data_key: bytes) -> WrappedKey:
        with self.pool.session(failure=WrapError) as s, self._objects, _translated(f"wrapping with {kek_label}"):
            return wrap.wrap(s.session, kek_label, data_key)

    def unwrap_key(self, wrapped: WrappedKey) -> bytes:
        what = f"unwrapping with {wrapped.kek_label}"
        with self.pool.session(failure=WrapError) as s, self._objects, _translated(what):
            return wrap.unwrap(s.session, wrapped)
