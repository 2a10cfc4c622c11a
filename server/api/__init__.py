"""The gRPC edge of signet-server: servicers, caller authentication from client certificates, and the only
place where :mod:`server.errors` become gRPC status codes.

- :mod:`.auth`: the verified client certificate -> :class:`~server.identity.Principal` (looked up in the CA
  tables on every call, so revocation takes effect at once).
- :mod:`.status`: ServerError -> status code + ``signet-error-bin`` trailer; the ``@rpc`` decorator.
- :mod:`.identity`, :mod:`.enrollment`, :mod:`.certificates`: one servicer per service of
  ``proto/signet/v1/server.proto``.
- :mod:`.listeners`: the two gRPC servers (mutual-TLS API, server-authenticated enrollment) with health
  and reflection.

Cross-organisation access is NOT_FOUND everywhere (the identity layer's rule, followed by the
certificate servicer): a caller cannot tell another organisation's ids from ids that do not exist.
"""
