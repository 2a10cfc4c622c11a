"""Remote signing: the server signs a recipient's turn with the key held for them on the server token
(:mod:`server.remotekeys`), for a recipient whose signing method is ``remote``.

One activation authorises one hash, once (the Cloud Signature Consortium's SCAL2 idea).  SignRemotely names the
revision (its SHA-256) and carries the code StartSigning sent for exactly that revision.  In this order:

1. the turn -- a remote recipient (a token recipient is FAILED_PRECONDITION ``TOKEN_RECIPIENT``), the hash named
   is the document's current revision (``REVISION_CHANGED``) -- and the person's key can sign
   (``REMOTE_KEY_MISSING``, ``REMOTE_KEY_REVOKED``, ``REMOTE_KEY_EXPIRED``): nothing is spent for a key that
   cannot sign;
2. the code is checked without spending it (a wrong guess counts, five burn the code: :mod:`.signing`);
3. the **activation**: one transaction, under the write lock, checks the turn and the hash again, spends the code
   and writes the ``activated`` event (recipient, document, revision hash, code id, certificate serial -- never the
   code).  Only then does the key sign;
4. the server builds the revision: a PDF gets one incremental PAdES signature in the field
   ``signet-<recipient id>`` (visible in the sender's box when one was placed), as the agent would make it; any
   other file a detached CAdES signature over the locked bytes;
5. :class:`~.service.EnvelopeService` accepts it through exactly the checks of SubmitSignature
   (:mod:`.acceptance`: formats.revision, the signer certificate -- this recipient's, the remote-signing policy --,
   routing), without a code (spent in 3).

A refusal after the activation leaves the code spent (the key was used for that hash): ask for a new code.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from formats import PdfSignOptions, TokenSigner, sign_detached, sign_pdf
from formats.errors import FormatError

from ..ca import db
from ..errors import FailedPrecondition
from ..identity import Principal
from ..store import Store
from . import events
from .access import actor
from .model import Document, Envelope, Recipient
from .signing import SigningCodes, binding

log = logging.getLogger(__name__)


class RemoteKeyring(Protocol):
    """The people's remote keys (:class:`server.remotekeys.RemoteKeys`)."""

    def signer(self, person_id: str) -> TokenSigner: ...


class NoRemoteKeys:
    """A server without remote keys: every remote signature is refused."""

    def signer(self, person_id: str) -> TokenSigner:
        raise FailedPrecondition("this server holds no remote-signing keys", reason="REMOTE_SIGNING_UNAVAILABLE")


def serial_of(signer: TokenSigner) -> str:
    cert = signer.signing_cert
    return db.serial_text(cert.serial_number) if cert is not None else ""


class RemoteSigning:
    def __init__(self, store: Store, codes: SigningCodes, keyring: RemoteKeyring, clock: Callable[[], datetime],
                 write: Callable[[], AbstractContextManager[None]], timestamp_url: str = "") -> None:
        self._store = store
        self._timestamp_url = timestamp_url
        self._codes = codes
        self._keyring = keyring
        self._now = clock
        self._write = write

    def require_key(self, person_id: str) -> None:
        """FAILED_PRECONDITION (``REMOTE_KEY_MISSING`` ...) unless the person's remote key can sign now."""
        self._keyring.signer(person_id)

    def sign(self, p: Principal, env: Envelope, r: Recipient, doc: Document, revision_sha256: str, *, code: str,
             code_id: str, previous: bytes, current: Callable[[], str],
             field_values: Mapping[str, str] | None = None) -> bytes:
        """Activate the recipient's key for ``revision_sha256`` (the code spent, the activation journalled) and
        return the new revision (PDF) or detached signature it made.  ``current`` re-reads, under the write lock,
        the current revision's SHA-256 when it is still this recipient's turn (and raises otherwise)."""
        sha = revision_sha256.strip().lower()
        if sha != doc.current_sha256:
            raise FailedPrecondition("revision_sha256 is not the document's current revision: fetch it again and ask "
                                     "for a new code", reason="REVISION_CHANGED")
        signer = self._keyring.signer(r.person_id)
        bind = binding(env.id, r.id, doc.id, sha)
        self._codes.check(bind, code, code_id)
        with self._write():
            if current() != sha:
                raise FailedPrecondition("another signature was added meanwhile: fetch the current revision and ask "
                                         "for a new code", reason="REVISION_CHANGED")
            accepted = self._codes.spend(bind, code, code_id)
            events.append(self._store, env.id, "activated", actor(p), self._now(), {
                "recipient_id": r.id, "document_id": doc.id, "revision_sha256": sha, "code_id": accepted.code_id,
                "certificate_serial": serial_of(signer)})
        log.info("envelope %s: remote key of recipient %s activated for document %s (code %s)", env.id, r.id,
                 doc.id, accepted.code_id)
        try:
            return build(doc, r, previous, signer, self._now(), field_values or {}, timestamp_url=self._timestamp_url)
        except FormatError as e:
            raise FailedPrecondition(f"the server could not sign the document: {type(e).__name__}",
                                     reason="REMOTE_SIGNING_FAILED") from None


def build(doc: Document, r: Recipient, previous: bytes, signer: TokenSigner, now: datetime,
          field_values: Mapping[str, str] | None = None, *, timestamp_url: str = "") -> bytes:
    """The revision the agent would return: ``previous`` plus an incremental PAdES signature in the recipient's
    field, with ``field_values`` filled in the same update (a PDF), or a detached CAdES signature over the locked
    bytes (any other file)."""
    if not doc.is_pdf:
        return bytes(sign_detached(io.BytesIO(previous), signer, signing_time=now))
    f = r.field
    values = dict(field_values or {})
    stamp: dict[str, Any] = {"level": "B-T", "timestamp_url": timestamp_url} if timestamp_url else {}
    options = PdfSignOptions(field_name=r.field_name, reason=f"Signet envelope {doc.name}", form_values=values,
                             **stamp)
    if f is not None:  # the envelope's page counts from 1, formats' from 0
        options = PdfSignOptions(field_name=r.field_name, reason=options.reason, visible=True, page=f.page - 1,
                                 box=(int(f.x1), int(f.y1), int(f.x2), int(f.y2)), form_values=values, **stamp)
    with tempfile.TemporaryDirectory(prefix="signet-remote-") as tmp:
        src, out = Path(tmp) / "in.pdf", Path(tmp) / "out.pdf"
        src.write_bytes(previous)
        sign_pdf(src, out, signer, options, signing_time=now)
        return out.read_bytes()
