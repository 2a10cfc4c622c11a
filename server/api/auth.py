"""Who is calling: the client certificate verified by the TLS handshake, checked against the CA's records.

gRPC has verified the chain up to our CA before a call arrives; here the certificate must also be
one this server issued as a TLS client certificate (same bytes on record), not revoked, and name a
caller in its SAN URI (:mod:`server.tls`).  The record is read on every call, so a revocation with
`signet-admin cert revoke` (or the API) shuts the caller out immediately.  The same rules
(:meth:`Authenticator.principal_of`, on the certificate's DER) sign people and operators in to the portal's
pages (:mod:`server.portal.console`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import grpc
from asn1crypto import pem, x509

from ..ca import Role, db
from ..errors import Unauthenticated
from ..identity import Principal
from ..keys import ServerKeys
from ..kiosk import CardSessions
from ..store import Store
from ..tls import ORIGIN_TLS_CLIENT, caller_of, certs_pem
from .stations import gate


def client_ca_pem(keys: ServerKeys) -> bytes:
    """The CA certificates a client certificate is verified against in the TLS handshake (TLS root and TLS CA)."""
    return certs_pem(keys.certificate_der(Role.TLS_ROOT), keys.certificate_der(Role.TLS_CA))


class Authenticator:
    card_sessions: CardSessions | None = None  # signing stations' card sessions (set by the API listener)

    def __init__(self, store: Store, issuing_key_hash: str) -> None:
        self.store = store
        self.issuing_key_hash = issuing_key_hash

    @classmethod
    def of(cls, store: Store, keys: ServerKeys) -> Authenticator:
        """The authenticator for certificates issued by the server's TLS CA (every listener that asks for one)."""
        return cls(store, db.spki_hash(keys[Role.TLS_CA].public_key_der))

    def principal(self, context: grpc.ServicerContext, rpc: str = "", request: object = None) -> Principal:
        """Who makes the call ``rpc`` ("Service.Method"): the certificate's caller, or for a signing station the
        card holder its card session names, where :mod:`.stations` allows it (default-deny)."""
        auth = cast(Mapping[str, list[bytes]], context.auth_context())  # the stubs say bytes; grpc gives lists
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise Unauthenticated("this call needs a client certificate issued by this server (mutual TLS)",
                                  reason="CLIENT_CERT_REQUIRED")
        try:
            der = pem.unarmor(pems[0])[2]
        except (ValueError, TypeError):
            raise Unauthenticated("the client certificate cannot be read", reason="CLIENT_CERT_INVALID") from None
        return gate(self.principal_of(der), context, rpc, request, self.card_sessions)

    def principal_of(self, der: bytes) -> Principal:
        """The caller a client certificate (DER, its chain verified by the TLS handshake) names, after the rules
        every listener applies: issued by this server as a TLS client certificate (same bytes on record), not
        revoked, a Signet caller in its SAN."""
        try:
            serial = x509.Certificate.load(der).serial_number
        except (ValueError, TypeError):
            raise Unauthenticated("the client certificate cannot be read", reason="CLIENT_CERT_INVALID") from None
        rec = db.find(self.store, self.issuing_key_hash, serial)
        if rec is None or rec.der != der or rec.origin != ORIGIN_TLS_CLIENT:
            raise Unauthenticated("the client certificate was not issued by this server as a client certificate",
                                  reason="CLIENT_CERT_UNKNOWN")
        if rec.revoked:
            raise Unauthenticated("the client certificate is revoked", reason="CLIENT_CERT_REVOKED")
        caller = caller_of(der)
        if caller is None:
            raise Unauthenticated("the client certificate names no Signet caller", reason="CLIENT_CERT_INVALID")
        return Principal(caller.org_id, caller.subject, caller.role)
