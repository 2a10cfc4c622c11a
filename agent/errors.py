"""Errors raised by the agent; hsm and formats errors pass through and are mapped only at the gRPC edge."""

from __future__ import annotations

from signet.tomlconf import ConfigProblems


class AgentError(Exception):
    """Base class of every error raised by :mod:`agent`."""

    reason = "AGENT_ERROR"


class ConfigError(ConfigProblems, AgentError):
    """The configuration file is missing, unreadable or invalid (the message names every setting at fault)."""

    reason = "CONFIG_INVALID"


class PermissionDenied(AgentError):
    """The caller may not use this key (per-key policy)."""

    reason = "PERMISSION_DENIED"


class ClientCertRevoked(AgentError):
    """The TLS client certificate is on its CA's CRL (as signet-server says for its own callers)."""

    reason = "CLIENT_CERT_REVOKED"


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


class UserDeclined(PermissionDenied):
    """The key's confirmation program did not approve this signature (refused, failed or timed out)."""

    reason = "USER_DECLINED"


class DigestsNotAllowed(PermissionDenied):
    """Raw digests show the signer nothing: the key's policy must set allow_digests = true."""

    reason = "DIGESTS_NOT_ALLOWED"


class Busy(AgentError):
    """The agent is at its capacity for this kind of call; retry later (RESOURCE_EXHAUSTED, not queued)."""

    reason = "BUSY"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PinThrottled(Busy):
    """Too many PIN attempts by this caller in the last minute."""

    reason = "PIN_THROTTLED"


class UploadStalled(AgentError):
    """An upload paused longer than the idle limit between chunks, or took longer than the upload limit."""

    reason = "UPLOAD_STALLED"


class DocumentTooComplex(AgentError):
    """A document job went over its time or memory limit; the worker was replaced."""

    reason = "DOCUMENT_TOO_COMPLEX"


class CertificateRevoked(AgentError):
    """The signing certificate is revoked (or on hold): the token is not asked to sign."""

    reason = "CERTIFICATE_REVOKED"


class RevocationUnknown(AgentError):
    """The revocation status of a certificate could not be established (responder unreachable, bad answer)."""

    reason = "REVOCATION_UNKNOWN"


class TimestampUrlRefused(InvalidRequest):
    """A caller named a timestamp authority that is not on the agent's allow-list."""

    reason = "TIMESTAMP_URL_REFUSED"
