"""The neutral base every Signet layer may import: the generated API (``signet.v1``) and a few small helpers.

``signet.wire`` (the gRPC error contract), ``signet.durable`` (crash-safe file writes), ``signet.secrets``
(PINs, codes and passwords from a file, the environment or a prompt), ``signet.tomlconf`` (typed TOML tables
that report every problem at once) and ``signet.pemfiles`` (certificates in PEM or DER files).  This package
imports nothing of hsm, formats, agent or server (checked by import-linter).
"""
