"""Who is calling: the client certificate verified by the TLS handshake, checked against the CA's records.

gRPC has verified the chain up to our CA before a call arrives; here the certificate must also be
one this server issued as a TLS client certificate (same bytes on record), not revoked, and name a
caller in its SAN URI (:mod:`server.tls`).  The record is read on every call, so a revocation with
`signet-admin cert revoke` (or the API) shuts the caller out immediately.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import grpc
from asn1crypto import pem, x509

from ..ca import db
from ..errors import Unauthenticated
from ..identity import Principal
from ..store import Store
from ..tls import ORIGIN_TLS_CLIENT, caller_of


class Authenticator:
    def __init__(self, store: Store, issuing_key_hash: str) -> None:
        self.store = store
        self.issuing_key_hash = issuing_key_hash

    def principal(self, context: grpc.ServicerContext) -> Principal:
        auth = cast(Mapping[str, list[bytes]], context.auth_context())  # the stubs say bytes; grpc gives lists
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise Unauthenticated("this call needs a client certificate issued by this server (mutual TLS)",
                                  reason="CLIENT_CERT_REQUIRED")
        try:
            der = pem.unarmor(pems[0])[2]
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
