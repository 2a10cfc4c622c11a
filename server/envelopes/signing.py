"""Signing codes: one-time codes (purpose ``envelope-sign``) bound to one recipient and one exact revision.

The binding is ``envelope|recipient|document|SHA-256 of the revision``: a code authorises signing exactly the
bytes whose hash the recipient asked it for (the Cloud Signature Consortium's SCAL2 idea).  It goes to the
recipient's verified phone through the notifier, as phone-possession codes do.

Which refusals spend a code: none.  A submission is checked first (:meth:`SigningCodes.check`: the code is
verified inside a transaction that is rolled back, so nothing is spent; a wrong code is still counted as a
failed attempt, as everywhere, and five of them burn the code), then the revision is validated, and the code is
spent only in the transaction that accepts the signature (:meth:`SigningCodes.spend`).  So a refused revision,
a refused certificate or a revision that changed meanwhile leave the code usable for a corrected submission
of the same revision.
"""

from __future__ import annotations

import logging

from ..errors import InvalidArgument, Unauthenticated
from ..notify.message import Address, Channel
from ..otp import AcceptedCode, Challenge, OneTimeCodes, send_code
from ..store import Store
from .model import Document, Envelope, Recipient

log = logging.getLogger(__name__)

SIGN_PURPOSE = "envelope-sign"


def binding(envelope_id: str, recipient_id: str, document_id: str, revision_sha256: str) -> str:
    return f"{envelope_id}|{recipient_id}|{document_id}|{revision_sha256}"


class _Undo(Exception):
    """Rolls a successful dry-run verification back."""


class SigningCodes:
    """``codes`` must use the same :class:`~server.store.Store` object as ``store`` (one transaction spans both)."""

    def __init__(self, store: Store, codes: OneTimeCodes, channel: Channel) -> None:
        self._store = store
        self._codes = codes
        self._channel = channel

    def send(self, env: Envelope, r: Recipient, doc: Document, phone: str) -> Challenge:
        """A code for signing the current revision of ``doc``, sent to ``phone``; RateLimited per phone."""
        sha = doc.current_sha256

        def text(code: str, minutes: int) -> str:
            return (f"Your Signet signing code is {code}. It authorises one signature of \"{doc.name}\" in "
                    f"\"{env.title}\" (SHA-256 {sha[:16]}...) and expires in {minutes} minutes. "
                    "Never share it; Signet staff will not ask for it.")

        return send_code(self._codes, self._channel, purpose=SIGN_PURPOSE,
                         binding=binding(env.id, r.id, doc.id, sha), to=Address.phone(phone),
                         subject="Signet signing code", text=text)

    def check(self, bind: str, code: str, code_id: str) -> None:
        """Refuse a code that is not this binding's, wrong, used, expired ... (Unauthenticated, OTP_* reasons)
        without spending a right one.  Not inside a transaction: the count of a wrong guess must commit."""
        if not code.strip():
            raise InvalidArgument("the one-time code is required (StartSigning sends it)", reason="OTP_REQUIRED")
        refusal: Unauthenticated | None = None
        try:
            with self._store.transaction():
                try:
                    self._codes.verify(SIGN_PURPOSE, bind, code, code_id or None)
                except Unauthenticated as e:
                    refusal = e  # committed: the wrong guess counts
                else:
                    raise _Undo
        except _Undo:
            log.info("envelope: signing code checked, kept until the signature is accepted")
        if refusal is not None:
            raise refusal

    def spend(self, bind: str, code: str, code_id: str) -> AcceptedCode:
        """Use the code once, inside the caller's accepting transaction (rolled back with it)."""
        return self._codes.verify(SIGN_PURPOSE, bind, code, code_id or None)
