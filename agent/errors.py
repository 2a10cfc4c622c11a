"""Errors raised by the agent; hsm and formats errors pass through and are mapped only at the gRPC edge."""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error raised by :mod:`agent`."""

    reason = "AGENT_ERROR"


class ConfigError(AgentError):
    """The configuration file is missing, unreadable or invalid (the message names the setting)."""

    reason = "CONFIG_INVALID"


class PermissionDenied(AgentError):
    """The caller may not use this key (per-key policy)."""

    reason = "PERMISSION_DENIED"


class UsageLimitReached(AgentError):
    """The key has made all the signatures its usage limit allows."""

    reason = "KEY_USAGE_LIMIT"


class GrantExhausted(AgentError):
    """The caller's unlock grant has expired or has no signatures left."""

    reason = "UNLOCK_EXPIRED"


class InvalidRequest(AgentError):
    """A request field is missing or malformed."""

    reason = "INVALID_ARGUMENT"


class DocumentTooLarge(AgentError):
    """An upload is larger than the configured document limit."""

    reason = "DOCUMENT_TOO_LARGE"


class DeadlineExpired(AgentError):
    """The caller's deadline passed before the work started: nothing was signed."""

    reason = "DEADLINE_EXCEEDED"


class JournalError(AgentError):
    """The journal could not record an operation: its result is withheld."""

    reason = "JOURNAL_FAILED"


class WorkerFailed(AgentError):
    """A document worker process died or misbehaved."""

    reason = "WORKER_FAILED"
