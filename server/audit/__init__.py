"""The tamper-evident audit log: an RFC 9162 Merkle tree over audit events, with heads signed by the audit key.

:mod:`signet.merkle` is the tree (pure functions, shared with the `signet` CLI), :mod:`signet.auditformat` the
leaf and tree-head encodings, :mod:`.log` the log in the store (:class:`AuditLog`).
"""

from .log import AuditError, AuditLog, Problem, Report, TreeHead, append, migrate

__all__ = ["AuditError", "AuditLog", "Problem", "Report", "TreeHead", "append", "migrate"]
