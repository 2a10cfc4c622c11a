"""The local bridge: a portal page asks this agent to sign an envelope's current revision with the person's token.

Off by default (``[bridge] listen``); plain HTTP on a loopback address only.  The portal's code form posts
(a plain HTML form, no script) to ``POST /v1/sign`` with the envelope, the document, the SHA-256 of the revision
the person saw, the one-time code they typed (bound by the server to that SHA-256), a per-request nonce and the
portal address to return to.  The bridge then, in this order:

1. refuses a request whose ``Host`` is not this loopback listener (DNS rebinding), whose ``Origin`` is not on
   ``allowed_origins``, whose return address is not under that origin, or whose nonce it has already seen
   (a resubmitted form never signs twice);
2. fetches the envelope and the revision over the agent's mutual-TLS link to signet-server (as the person the
   agent was enrolled for) and refuses when the revision is not the one the page showed;
3. runs the bridge's confirmation program (the agent's confirm hook, :mod:`agent.confirm`) with the document's
   name and SHA-256 and the asking origin; the person approves there and types the PIN there -- the web page
   never sees it;
4. signs on the token through the agent's own socket (the key's policy, journal and confirmation apply as for any
   signature), submits the revision with the code, and sends the browser back to the portal (303).

A refusal is a plain page saying what happened and that nothing was signed.  The log names the envelope and
the outcome; never the PIN, the code or the document.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from html import escape
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc

from signet.http11 import Http11Handler
from signet.v1 import server_pb2

from .client import AgentClient, Target, TokenRef
from .config import BridgeConfig
from .confirm import ConfirmRequest, ask
from .envelope_signing import EnvelopeUsage, Me, enrolled, sign_revision
from .errors import UserDeclined
from .serverlink import ServerLink, ServerRefused

log = logging.getLogger(__name__)

PATH = "/v1/sign"
MAX_BODY = 16 * 1024
NONCE_SECONDS = 24 * 3600
MAX_NONCES = 10_000
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FIELDS = {"envelope": r"[A-Za-z0-9_-]{1,64}", "document": r"[A-Za-z0-9_-]{1,64}", "sha256": r"[0-9a-f]{64}",
           "code_id": r"[A-Za-z0-9_-]{1,64}", "code": r"[0-9A-Za-z]{4,12}", "nonce": r"[A-Za-z0-9_-]{16,128}"}
FIELD_PREFIX = "field."  # the recipient's form fields, filled in the same revision: field.<name>=<value>
SIGNING_ROLES = (server_pb2.RECIPIENT_ROLE_SIGNER, server_pb2.RECIPIENT_ROLE_APPROVER)


class Refused(Exception):
    def __init__(self, status: int, message: str, back: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.back = back


class Nonces:
    """Nonces seen within a day: a form posted twice (reload, back button, replay) signs at most once."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, nonce: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= MAX_NONCES:
                self._seen = {n: t for n, t in self._seen.items() if now - t < NONCE_SECONDS}
            if len(self._seen) >= MAX_NONCES or nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


def page(title: str, message: str, back: str = "") -> bytes:
    link = f"<p><a href=\"{escape(back)}\">Back to the portal 返回</a></p>" if back else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{escape(title)} — Signet agent</title><style>body{{font-family:sans-serif;max-width:40rem;margin:2rem "
            "auto;color:#111}</style></head>"
            f"<body><main><h1>{escape(title)}</h1><p role=\"alert\">{escape(message)}</p>{link}</main></body></html>"
            ).encode()


class _Handler(Http11Handler):  # never HTTP/0.9's bare body (fuzz findings F21, F23)
    server: BridgeServer
    server_version = "signet-agent-bridge"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("bridge %s %s", getattr(self, "command", "") or "-", (getattr(self, "path", "") or "")[:40])

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {**HEADERS, "Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)),
                     **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(404, page("Not here", "This is the Signet agent's bridge; portal pages post to it."))

    def do_POST(self) -> None:
        try:
            if self.path.split("?", 1)[0] != PATH:
                raise Refused(404, "there is nothing here")
            origin = self._check_caller()
            form = self._form()
            back = self._return_url(form, origin)
            location = self.server.sign(form, origin, back)
            self._send(303, b"", {"Location": location})
        except Refused as e:
            self.close_connection = True
            self._send(e.status, page("Not signed 未签署", e.message, e.back))
        except Exception:  # anything unexpected: a plain page, the details in the log
            log.exception("bridge request failed")
            self.close_connection = True
            self._send(500, page("Not signed 未签署", "the agent failed; nothing was signed"))

    def _check_caller(self) -> str:
        host = self.headers.get("Host", "")
        if host not in self.server.hosts:
            raise Refused(403, "this request did not come to the agent's loopback address; nothing was signed")
        origin = self.headers.get("Origin", "")
        if origin not in self.server.config.allowed_origins:
            log.info("bridge: refused a request from origin %r", origin[:80])
            raise Refused(403, "this page may not ask your agent to sign (its origin is not on the agent's "
                               "allow-list); nothing was signed")
        if not (self.headers.get("Content-Type", "").split(";")[0].strip()
                == "application/x-www-form-urlencoded"):
            raise Refused(415, "the request is not a form; nothing was signed")
        return origin

    def _form(self) -> dict[str, str]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise Refused(400, "the request has no valid length") from None
        if not 0 < length <= MAX_BODY:
            raise Refused(413 if length > 0 else 400, "the request is empty or too large")
        raw = self.rfile.read(length)
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=80)
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "the form cannot be read") from None
        return {k: v[0] for k, v in parsed.items()}

    def _return_url(self, form: dict[str, str], origin: str) -> str:
        back = form.get("return", "")
        try:
            parts = urlsplit(back)
        except ValueError:  # e.g. an unbalanced "[" in the host (fuzz finding F22): no address at all
            raise Refused(400, "the page gave no address of its own to return to; nothing was signed") from None
        if f"{parts.scheme}://{parts.netloc}" != origin or not parts.path.startswith("/") or "\\" in back \
                or any(not 33 <= ord(c) <= 126 for c in back):  # printable ASCII: a Location header (F24)
            raise Refused(400, "the page gave no address of its own to return to; nothing was signed")
        return back


class BridgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: BridgeConfig, agent_socket: Path, state_dir: Path) -> None:
        host, _, port = config.listen.rpartition(":")
        super().__init__((host.strip("[]"), int(port)), _Handler)
        self.config = config
        self.agent = Target(socket=agent_socket)
        self.state_dir = state_dir
        self.nonces = Nonces()
        bound = self.server_address[1]
        self.hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"}
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="bridge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    # -- the signature --------------------------------------------------------------------------------------------
    def sign(self, form: dict[str, str], origin: str, back: str) -> str:
        for name, pattern in _FIELDS.items():
            if not re.fullmatch(pattern, form.get(name, "").strip()):
                raise Refused(400, f"the request has no valid {name.replace('_', ' ')}; nothing was signed", back)
        f = {k: form[k].strip() for k in _FIELDS}
        if not self.nonces.claim(f["nonce"]):
            raise Refused(409, "this form was already sent to the agent; open the envelope again to sign", back)
        values = {k[len(FIELD_PREFIX):]: v.strip() for k, v in form.items() if k.startswith(FIELD_PREFIX)}
        self.perform({**f, "timestamp_url": form.get("timestamp_url", ""),
                      **{FIELD_PREFIX + k: v for k, v in values.items()}}, origin, back)
        return back

    def perform(self, f: dict[str, str], origin: str, back: str) -> None:
        """The checked request: fetch, confirm, sign, submit (a :class:`Refused` with a way ``back`` if not)."""
        try:
            me = enrolled(self.state_dir)
            with ServerLink(me.target) as link, AgentClient(self.agent) as client:
                self._sign(link, client, me, f, origin=origin, back=back)
        except ServerRefused as e:
            log.info("bridge: the server refused envelope %s: %s", f["envelope"], e.reason or e.code)
            raise Refused(409 if e.code == "FAILED_PRECONDITION" else 403 if e.code in (
                "PERMISSION_DENIED", "UNAUTHENTICATED") else 400, f"{e.message}; nothing was signed", back) from None
        except UserDeclined as e:
            raise Refused(403, e.args[0] if e.args else "declined; nothing was signed", back) from None
        except EnvelopeUsage as e:
            raise Refused(409, f"{e}; nothing was signed", back) from None
        except grpc.RpcError as e:
            details = e.details() if hasattr(e, "details") else ""
            log.info("bridge: the agent refused envelope %s: %s", f["envelope"], e.code() if hasattr(e, "code") else "")
            raise Refused(403, f"the token did not sign: {details or 'refused'}; nothing was signed", back) from None
        log.info("bridge: signed envelope %s document %s for %s", f["envelope"], f["document"], origin)

    def _sign(self, link: ServerLink, client: AgentClient, me: Me, f: dict[str, str], *, origin: str,
              back: str) -> None:
        svc = link.envelopes
        env = link.call(svc.GetEnvelope, server_pb2.GetEnvelopeRequest(envelope_id=f["envelope"])).envelope
        mine = [r for r in env.recipients if r.person_id == me.person_id and r.role in SIGNING_ROLES
                and r.signing_method != server_pb2.SIGNING_METHOD_REMOTE]
        doc = next((d for d in env.documents if d.id == f["document"]), None)
        if not mine or doc is None:
            raise Refused(403, "the person this agent is enrolled for is not asked to sign this document with a "
                               "token; nothing was signed", back)
        got = link.call(svc.GetDocument, server_pb2.GetDocumentRequest(envelope_id=env.id, document_id=doc.id))
        sha = hashlib.sha256(got.content).hexdigest()
        if sha != f["sha256"]:
            raise Refused(409, "the document changed since the page showed it (someone signed meanwhile); open the "
                               "envelope again; nothing was signed", back)
        token = self._token(client, me)
        pin = ask(self.config.confirm, ConfirmRequest(  # type: ignore[arg-type]  # required by the config
            operation="sign_envelope", file_name=doc.name, sha256=sha, size=len(got.content),
            pages=doc.pages or None, signer_subject="", caller=f"bridge:{origin}", token=token.label, key_id="",
            origin=origin, pin_wanted=True))
        keys = [k.key_id for k in client.keys(token, pin).keys if k.certificate_der]
        key_id = me.key_id if me.key_id in keys else keys[0] if len(keys) == 1 else ""
        if not key_id:
            raise Refused(409, f"the token {token.label!r} does not hold the key this agent was enrolled with; "
                               "nothing was signed", back)
        values = {k[len(FIELD_PREFIX):]: v for k, v in f.items() if k.startswith(FIELD_PREFIX)}
        signed = sign_revision(client, got.content, doc, mine[0], token=token, key_id=key_id, pin=pin,
                               values=values if doc.media_type == "application/pdf" else None,
                               timestamp_url=f["timestamp_url"])
        link.call(svc.SubmitSignature, server_pb2.SubmitSignatureRequest(
            idempotency_key=f"{env.id}-{doc.id}-{sha}", envelope_id=env.id, document_id=doc.id,
            one_time_code=f["code"], code_id=f["code_id"], content=signed))

    def _token(self, client: AgentClient, me: Me) -> TokenRef:
        """``bridge.token``; else the token the agent was enrolled on (`signet enroll` records it); else the only
        token present."""
        if self.config.token or me.token_label:
            return TokenRef(label=self.config.token or me.token_label)
        labels = [t.label for t in client.tokens().tokens]
        if len(labels) != 1:
            raise EnvelopeUsage(f"{len(labels)} tokens are present: name the one to sign with in bridge.token"
                                if labels else "no token is present: insert your card or token")
        return TokenRef(label=labels[0])
