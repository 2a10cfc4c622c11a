"""The Cloud Signature Consortium API v2 (a subset) over remote-signing keys: :mod:`.service` (the endpoints'
rules: login, credentials, OTP, SAD bound to hashes, signHash) and :mod:`.listener` (its HTTPS listener,
``[csc] listen``)."""

from .listener import CscHttpServer
from .service import CscError, CscService

__all__ = ["CscError", "CscHttpServer", "CscService"]
