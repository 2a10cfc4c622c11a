"""The confirmation hook: what the signer sees before each signature, and their yes or no.

A key whose policy names a ``confirm`` program (ssh-askpass style) signs only after that program approves:
it gets one JSON object on stdin -- operation, file name, SHA-256 and size of the document, page count for
PDFs, the signer certificate's subject, the caller, the token and key -- and approves by exiting 0 within
the timeout.  Anything else (another exit status, a crash, silence past the timeout) is a refusal
(:class:`~agent.errors.UserDeclined`).  The document itself never goes to the program, nor any PIN.
Kiosk and portal front ends plug in here.

For the local bridge (:mod:`agent.bridge`) the request says ``"pin_wanted": true`` and the program, having
asked the person, writes the token's PIN as the first line of its standard output (pinentry style): the PIN is
typed in the agent's own dialog, never in the web page that asked.  Without that flag the output is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from dataclasses import asdict, dataclass

from .config import Confirmation
from .errors import UserDeclined

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfirmRequest:
    operation: str  # sign_pdf, sign_detached, sign_digest
    file_name: str
    sha256: str  # of the document as the caller sent it (sign_digest: the digest itself)
    size: int
    pages: int | None
    signer_subject: str
    caller: str
    token: str
    key_id: str
    origin: str = ""  # the web page that asked (bridge requests)
    pin_wanted: bool = False


def ask(confirmation: Confirmation, request: ConfirmRequest) -> str | None:
    """Run the program; return when it approved (with the PIN it wrote when ``request.pin_wanted``), raise
    :class:`UserDeclined` otherwise."""
    data = json.dumps(asdict(request), ensure_ascii=False).encode("utf-8")
    try:
        proc = subprocess.Popen(  # noqa: S603 - the program comes from the agent's own configuration
            list(confirmation.program), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if request.pin_wanted else subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
    except OSError as e:
        log.error("confirmation program %s cannot start: %s", confirmation.program[0], e.strerror)
        raise UserDeclined("the confirmation program could not be started; nothing was signed") from None
    try:
        out, _ = proc.communicate(data, timeout=confirmation.timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.info("confirmation of %s timed out after %.0f s", request.sha256[:16], confirmation.timeout_seconds)
        raise UserDeclined(f"no confirmation within {confirmation.timeout_seconds:.0f} s; nothing was signed") \
            from None
    if proc.returncode != 0:
        log.info("confirmation of %s refused (exit %s)", request.sha256[:16], proc.returncode)
        raise UserDeclined("the signer declined this signature; nothing was signed")
    log.info("confirmation of %s approved", request.sha256[:16])
    if not request.pin_wanted:
        return None
    pin = (out or b"").split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    if not pin:
        raise UserDeclined("the confirmation gave no PIN; nothing was signed")
    return pin
