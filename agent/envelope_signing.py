"""Signing an envelope's revision on the token, shared by `signet envelope sign` (the CLI) and the local
bridge (:mod:`agent.bridge`): who the agent was enrolled for, and the new revision the agent makes."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from signet.v1 import server_pb2

from .cli_errors import Usage
from .client import AgentClient, PdfOptions, TokenRef
from .serverlink import ServerTarget


class EnvelopeUsage(Usage):
    """A command line that cannot be carried out as given (exit 2)."""


@dataclass(frozen=True)
class Me:
    person_id: str
    server_dir: Path
    target: ServerTarget
    key_id: str = ""  # the key enrolled on the token (hex CKA_ID), when known
    token_label: str = ""  # the token it was enrolled on, when known


def enrolled(state_dir: Path, api: str | None = None) -> Me:
    """The enrolled person and the server's API, from the TLS files `signet enroll` left in the agent's state."""
    server_dir = state_dir / "server"
    record = server_dir / "enrollment.json"
    if not record.exists():
        raise EnvelopeUsage(f"no enrollment in {server_dir}: run `signet enroll` first")
    info = json.loads(record.read_text())
    address = api or info.get("api")
    if not address:
        raise EnvelopeUsage("the enrollment recorded no API address: give --server-api HOST:PORT")
    target = ServerTarget(enroll=str(info.get("enroll") or address), ca_pem=(server_dir / "ca.pem").read_bytes(),
                          api=address, client_cert_pem=(server_dir / "agent.crt").read_bytes(),
                          client_key_pem=(server_dir / "agent.key").read_bytes())
    return Me(str(info["person_id"]), server_dir, target, str(info.get("key_id") or ""),
              str(info.get("token_label") or ""))


def sign_revision(client: AgentClient, content: bytes, d: server_pb2.EnvelopeDocument,
                  recipient: server_pb2.Recipient, *, token: TokenRef, key_id: str, pin: str | None,
                  values: dict[str, str] | None = None, timestamp_url: str = "") -> bytes:
    """The new revision (PDF) or the detached CMS, made by the agent on the token (its confirmation runs); the
    agent fills ``values`` (form field name -> value) in the same incremental update as the signature, and makes
    it PAdES B-T with ``timestamp_url`` (the server's TSA, from StartSigning) when given."""
    pdf = d.media_type == "application/pdf"
    form = dict(values or {})
    options = PdfOptions(field_name=f"signet-{recipient.id}", reason=f"Signet envelope {d.name}", form_values=form,
                         timestamp_url=timestamp_url)
    if recipient.HasField("field"):
        f = recipient.field
        options = PdfOptions(field_name=options.field_name, reason=options.reason,
                             visible=(int(f.page) - 1, f.x1, f.y1, f.x2, f.y2),  # the agent counts from 0
                             form_values=form, timestamp_url=timestamp_url)
    with tempfile.TemporaryDirectory(prefix="signet-envelope-") as tmp:
        src = Path(tmp) / Path(d.name).name  # the name the confirmation program shows
        src.write_bytes(content)
        _, out = client.sign_to_bytes(src, pdf=pdf, token=token, key_id=key_id, pin=pin, options=options)
    return out
