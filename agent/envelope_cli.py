"""`signet inbox` and `signet envelope ...`: contracts between parties, through signet-server's EnvelopeService.

The CLI speaks to the server's mutual-TLS API as the person the agent was enrolled for (the TLS files
`signet enroll` kept in the agent's state directory), and has the agent sign on the token (SignPdf /
SignDetached, with the key's confirmation program as for any document).  Signing an envelope takes two steps,
because the one-time code goes to the signer's phone:

    signet envelope sign ENV --send-code          # the code is bound to the exact revision to be signed
    signet envelope sign ENV --code-env CODE      # signs that revision on the token and submits it

A person without a token, for whom an operator created a remote-signing key on the server token, signs with
``--remote``: the server signs the revision the code is bound to with that key (SignRemotely).  With
``--identity DIR`` (the API files `signet-admin remote-key create --out DIR` wrote) the CLI talks to the server
directly, without an agent:

    signet envelope sign ENV --remote --identity DIR --send-code
    signet envelope sign ENV --remote --identity DIR --code-env CODE

`signet envelope bulk-send TEMPLATE ROWS.csv` sends one envelope per CSV row from a template draft
(:mod:`agent.envelope_bulk`).

The sender may assign form fields (text, date, checkbox) to recipients (``--form-field``); a signer fills theirs
with ``--field NAME=VALUE``: the agent (or, for ``--remote``, the server) fills them in the same incremental
update as the signature.

The server validates every returned revision (an incremental update of the exact previous bytes, earlier
signatures intact, only this signature added and only this recipient's form fields filled, the signer
certificate this recipient's) and refuses anything else without changing the envelope.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from signet.durable import write_atomic
from signet.secrets import read_secret
from signet.v1 import server_pb2

from . import envelope_bulk
from .client import AgentClient, TokenRef
from .envelope_signing import EnvelopeUsage, Me, enrolled, sign_revision
from .serverlink import ServerLink, ServerRefused, ServerTarget

ROLES = {"signer": server_pb2.RECIPIENT_ROLE_SIGNER, "approver": server_pb2.RECIPIENT_ROLE_APPROVER,
         "copy": server_pb2.RECIPIENT_ROLE_COPY}


def whoami(client: AgentClient, api: str | None) -> Me:
    """The enrolled person and the server's API, from the TLS files `signet enroll` left with the agent."""
    state = client.info().state_dir
    if not state:
        raise EnvelopeUsage("the agent does not say where its state is (a TCP connection?): envelopes need the "
                            "agent's enrollment")
    return enrolled(Path(state), api)


def from_identity(directory: Path, api: str | None) -> Me:
    """The person and the server's API from the files an operator handed over (``--identity DIR``)."""
    record = directory / "identity.json"
    if not record.exists():
        raise EnvelopeUsage(f"no identity.json in {directory}: give the directory signet-admin remote-key create "
                            "wrote")
    info = json.loads(record.read_text())
    address = api or info.get("api")
    if not address:
        raise EnvelopeUsage("the identity records no API address: give --server-api HOST:PORT")
    target = ServerTarget(enroll=str(address), ca_pem=(directory / "ca.pem").read_bytes(), api=str(address),
                          client_cert_pem=(directory / "client.crt").read_bytes(),
                          client_key_pem=(directory / "client.key").read_bytes())
    return Me(str(info["person_id"]), directory, target)


def _message_dict(m: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = MessageToDict(m, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    return out


def _show(env: server_pb2.Envelope) -> str:
    lines = [f"envelope {env.id}: {env.title!r} from {env.sender_name}, "
             f"{server_pb2.EnvelopeState.Name(env.state).removeprefix('ENVELOPE_STATE_').lower()}"]
    if env.HasField("sent_at"):
        lines.append(f"  sent at      {env.sent_at.ToDatetime():%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC")
    for d in env.documents:
        lines.append(f"  document {d.id}: {d.name} ({d.size} bytes, {d.pages} pages) sha256 {d.current_sha256}, "
                     f"{d.signatures} signature(s)")
    for r in env.recipients:
        state = server_pb2.RecipientState.Name(r.state).removeprefix("RECIPIENT_STATE_").lower()
        when = f" at {r.signed_at.ToDatetime():%Y-%m-%d %H:%M:%S} UTC" if r.HasField("signed_at") else ""
        lines.append(f"  {r.routing_order}. {r.legal_name} ({r.person_id}) "
                     f"{server_pb2.RecipientRole.Name(r.role).removeprefix('RECIPIENT_ROLE_').lower()}: {state}{when}")
    return "\n".join(lines)


def _recipient(spec: str, remote: frozenset[str] = frozenset()) -> server_pb2.RecipientSpec:
    parts = spec.split(":")
    if not parts[0] or len(parts) > 4:
        raise EnvelopeUsage(f"cannot read recipient {spec!r}: PERSON[:ROLE[:ORDER[:PAGE,X1,Y1,X2,Y2]]]")
    role = parts[1] if len(parts) > 1 and parts[1] else "signer"
    if role not in ROLES:
        raise EnvelopeUsage(f"recipient role {role!r}: signer, approver or copy")
    try:
        order = int(parts[2]) if len(parts) > 2 and parts[2] else 1
        box = [float(x) for x in parts[3].split(",")] if len(parts) > 3 else []
    except ValueError:
        raise EnvelopeUsage(f"cannot read recipient {spec!r}: the order and the box are numbers") from None
    r = server_pb2.RecipientSpec(person_id=parts[0], role=ROLES[role], routing_order=order,
                                 signing_method=server_pb2.SIGNING_METHOD_REMOTE if parts[0] in remote
                                 else server_pb2.SIGNING_METHOD_TOKEN)
    if box:
        if len(box) != 5:
            raise EnvelopeUsage("a signature box is PAGE,X1,Y1,X2,Y2 (points)")
        r.field.CopyFrom(server_pb2.SignatureField(page=int(box[0]), x1=box[1], y1=box[2], x2=box[3], y2=box[4]))
    return r


FORM_KINDS = {"text": server_pb2.FORM_FIELD_KIND_TEXT, "date": server_pb2.FORM_FIELD_KIND_DATE,
              "checkbox": server_pb2.FORM_FIELD_KIND_CHECKBOX}


def _form_field(spec: str) -> tuple[str, server_pb2.FormFieldSpec]:
    """``PERSON:NAME:KIND:PAGE,X1,Y1,X2,Y2[:required]`` -> (person, field)."""
    parts = spec.split(":")
    usage = f"cannot read form field {spec!r}: PERSON:NAME:KIND:PAGE,X1,Y1,X2,Y2[:required]"
    if len(parts) not in (4, 5) or not parts[0] or not parts[1] or (len(parts) == 5 and parts[4] != "required"):
        raise EnvelopeUsage(usage)
    if parts[2] not in FORM_KINDS:
        raise EnvelopeUsage(f"form field kind {parts[2]!r}: text, date or checkbox")
    try:
        box = [float(x) for x in parts[3].split(",")]
    except ValueError:
        raise EnvelopeUsage(usage) from None
    if len(box) != 5:
        raise EnvelopeUsage(usage)
    return parts[0], server_pb2.FormFieldSpec(name=parts[1], kind=FORM_KINDS[parts[2]], page=int(box[0]), x1=box[1],
                                              y1=box[2], x2=box[3], y2=box[4], required=len(parts) == 5)


def _field_values(items: list[str]) -> dict[str, str]:
    """``--field NAME=VALUE`` options as a mapping."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise EnvelopeUsage(f"cannot read --field {item!r}: NAME=VALUE")
        if name in out:
            raise EnvelopeUsage(f"--field {name} is given twice")
        out[name] = value
    return out


def _recipients(args: argparse.Namespace) -> list[server_pb2.RecipientSpec]:
    """The ``--recipient`` options, each with its ``--form-field``s."""
    recipients = [_recipient(s, frozenset(args.remote_signer)) for s in args.recipient]
    for person, ff in (_form_field(s) for s in args.form_field):
        owner = next((r for r in recipients if r.person_id == person), None)
        if owner is None:
            raise EnvelopeUsage(f"--form-field names no recipient: {person}")
        owner.form_fields.append(ff)
    return recipients


def _media_type(path: Path) -> str:
    with open(path, "rb") as f:
        return "application/pdf" if b"%PDF-" in f.read(1024) else "application/octet-stream"


def _print(args: argparse.Namespace, message: Any, text: str) -> None:
    print(json.dumps(_message_dict(message), indent=2, sort_keys=True, ensure_ascii=False) if args.json else text)


def cmd(client: AgentClient | None, args: argparse.Namespace, token: Any, pin: Any) -> int:
    """Run `signet inbox` / `signet envelope ACTION`; ``token``/``pin`` are callables (asked only when signing).
    Without ``client`` (``--identity DIR``) the command talks to the server alone: no token signing then."""
    if getattr(args, "identity", None):
        me = from_identity(Path(args.identity), args.server_api)
    elif client is None:
        raise EnvelopeUsage("without an agent, give --identity DIR (the files an operator gave you)")
    else:
        me = whoami(client, args.server_api)
    with ServerLink(me.target) as link:
        try:
            if args.command in ("contracts", "evidence"):
                from . import contracts_cli

                return contracts_cli.run(args, link)
            return _run(client, args, me, link, token, pin)
        except ServerRefused as e:
            print(f"signet envelope: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"error": e.message, "status": e.code, "reason": e.reason, "exit": 1}))
            return 6 if e.code == "PERMISSION_DENIED" else 7 if e.code == "NOT_FOUND" else \
                5 if e.code == "FAILED_PRECONDITION" else 4 if e.code == "UNAUTHENTICATED" else \
                9 if e.code == "INVALID_ARGUMENT" else 1


def _key(idempotency: str | None) -> str:
    return idempotency or secrets.token_hex(16)


def _run(client: AgentClient | None, args: argparse.Namespace, me: Me, link: ServerLink, token: Any,
         pin: Any) -> int:
    svc = link.envelopes
    action = "inbox" if args.command == "inbox" else args.action
    if action in ("inbox", "list"):
        view = "inbox" if action == "inbox" else ("" if args.view == "all" else args.view)
        r = link.call(svc.ListEnvelopes, server_pb2.ListEnvelopesRequest(view=view, page_size=200))
        _print(args, r, "\n".join(_show(e) for e in r.envelopes) or "no envelopes")
        return 0
    if action == "create":
        unknown = set(args.remote_signer) - {s.split(":")[0] for s in args.recipient}
        if unknown:
            raise EnvelopeUsage(f"--remote-signer names no recipient: {', '.join(sorted(unknown))}")
        docs = []
        for f in args.document:
            p = Path(f)
            if not p.is_file() or p.stat().st_size == 0:
                raise EnvelopeUsage(f"{f} is not a non-empty file")
            docs.append(server_pb2.DocumentSpec(name=p.name, media_type=_media_type(p), content=p.read_bytes()))
        recipients = _recipients(args)
        env = link.call(svc.CreateEnvelope, server_pb2.CreateEnvelopeRequest(
            idempotency_key=_key(args.idempotency_key), title=args.title, message=args.message, tags=args.tag,
            documents=docs, recipients=recipients, expires_in_days=args.expires_in_days,
            append_signature_page=args.signature_page)).envelope
        _print(args, env, _show(env))
        return 0
    if action == "send":
        env = link.call(svc.SendEnvelope, server_pb2.SendEnvelopeRequest(
            idempotency_key=_key(args.idempotency_key), envelope_id=args.envelope)).envelope
        _print(args, env, _show(env))
        return 0
    if action == "show":
        env = link.call(svc.GetEnvelope, server_pb2.GetEnvelopeRequest(envelope_id=args.envelope)).envelope
        _print(args, env, _show(env))
        return 0
    if action in ("decline", "void"):
        if action == "decline":
            env = link.call(svc.DeclineEnvelope, server_pb2.DeclineEnvelopeRequest(
                idempotency_key=_key(None), envelope_id=args.envelope, reason=args.reason)).envelope
        else:
            env = link.call(svc.VoidEnvelope, server_pb2.VoidEnvelopeRequest(
                idempotency_key=_key(None), envelope_id=args.envelope, reason=args.reason)).envelope
        _print(args, env, _show(env))
        return 0
    if action == "events":
        ev = link.call(svc.ListEnvelopeEvents, server_pb2.ListEnvelopeEventsRequest(envelope_id=args.envelope,
                                                                                     page_size=1000))
        _print(args, ev, "\n".join(f"{e.at.ToDatetime():%Y-%m-%d %H:%M:%S.%f}"[:-3] + f" UTC  {e.type:<10} {e.actor}"
                                   for e in ev.events))
        return 0
    others = {"download": lambda: _download(args, link), "bulk-send": lambda: envelope_bulk.bulk_send(args, link),
              "sign": lambda: _sign(client, args, me, link, token, pin)}
    if action not in others:
        raise EnvelopeUsage(f"unknown envelope action {action!r}")
    return others[action]()


def _download(args: argparse.Namespace, link: ServerLink) -> int:
    svc = link.envelopes
    env = link.call(svc.GetEnvelope, server_pb2.GetEnvelopeRequest(envelope_id=args.envelope)).envelope
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for d in env.documents:
        r = link.call(svc.GetDocument, server_pb2.GetDocumentRequest(envelope_id=env.id, document_id=d.id))
        path = out / d.name
        write_atomic(path, r.content, 0o644)
        written.append(str(path))
        for n, sig in enumerate(r.signatures, start=1):
            p7s = out / f"{d.name}.{n}.p7s"
            write_atomic(p7s, sig, 0o644)
            written.append(str(p7s))
    if args.json:
        print(json.dumps({"envelope": env.id, "files": written}))
    else:
        print("\n".join(written))
    return 0


def _pending_path(me: Me, envelope: str, document: str) -> Path:
    return me.server_dir / f"envelope-code-{envelope}-{document}.json"


def _my_turn(env: server_pb2.Envelope, me: Me, args: argparse.Namespace,
             client: AgentClient | None) -> server_pb2.Recipient:
    """The caller's recipient entry, when the way they sign (token or --remote) matches it."""
    mine = [r for r in env.recipients if r.person_id == me.person_id
            and r.role in (server_pb2.RECIPIENT_ROLE_SIGNER, server_pb2.RECIPIENT_ROLE_APPROVER)]
    if not mine:
        raise EnvelopeUsage(f"you ({me.person_id}) are not asked to sign envelope {env.id}")
    remote = mine[0].signing_method == server_pb2.SIGNING_METHOD_REMOTE
    if remote != bool(args.remote):
        raise EnvelopeUsage("you sign this envelope remotely, with the key the server holds for you: add --remote"
                            if remote else "you sign this envelope with your own token: leave out --remote")
    if not remote and client is None:
        raise EnvelopeUsage("signing with your token needs your agent: leave out --identity")
    return mine[0]


def _sign(client: AgentClient | None, args: argparse.Namespace, me: Me, link: ServerLink, token: Any,
          pin: Any) -> int:
    svc = link.envelopes
    env = link.call(svc.GetEnvelope, server_pb2.GetEnvelopeRequest(envelope_id=args.envelope)).envelope
    recipient = _my_turn(env, me, args, client)
    remote = recipient.signing_method == server_pb2.SIGNING_METHOD_REMOTE
    documents = [d for d in env.documents if not args.document or d.id == args.document]
    if not documents:
        raise EnvelopeUsage(f"envelope {env.id} has no document {args.document!r}")
    values = _field_values(args.field)
    code = read_secret(args.code_file, args.code_env, what="one-time code")
    code = code.strip() if code else None
    results: list[dict[str, Any]] = []
    for d in documents:
        r = link.call(svc.GetDocument, server_pb2.GetDocumentRequest(envelope_id=env.id, document_id=d.id))
        revision_sha = hashlib.sha256(r.content).hexdigest()
        pending = _pending_path(me, env.id, d.id)
        if args.send_code or code is None:
            started = link.call(svc.StartSigning, server_pb2.StartSigningRequest(
                envelope_id=env.id, document_id=d.id, revision_sha256=revision_sha))
            c = started.challenge
            write_atomic(pending, json.dumps({"code_id": c.code_id, "revision_sha256": revision_sha,
                                              "timestamp_url": started.timestamp_url}).encode(), 0o600)
            results.append({"document": d.id, "code_sent": {"channel": c.channel, "code_id": c.code_id,
                                                            "revision_sha256": revision_sha}})
            print(f"signing code for {d.name} (revision sha256 {revision_sha[:16]}...) sent via {c.channel} "
                  f"(code id {c.code_id})", file=sys.stderr if args.json else sys.stdout)
            continue
        if not pending.exists():
            raise EnvelopeUsage(f"no code was sent for {d.name}: run with --send-code first")
        kept = json.loads(pending.read_text())
        if kept["revision_sha256"] != revision_sha:
            raise EnvelopeUsage(f"{d.name} changed since the code was sent (another signer signed): send a new "
                                "code with --send-code")
        pdf_values = values if d.media_type == "application/pdf" else {}
        if remote:  # the server signs the revision the code is bound to, with the key it holds for you
            env = link.call(svc.SignRemotely, server_pb2.SignRemotelyRequest(
                idempotency_key=f"{env.id}-{d.id}-{revision_sha}", envelope_id=env.id, document_id=d.id,
                revision_sha256=revision_sha, one_time_code=code, code_id=kept["code_id"],
                field_values=pdf_values)).envelope
        elif client is None:  # refused above: token signing needs the agent
            raise EnvelopeUsage("signing with your token needs your agent")
        else:
            signed = _sign_on_token(client, args, r.content, d, recipient, token=token(), pin=pin(),
                                    values=pdf_values, timestamp_url=str(kept.get("timestamp_url", "")))
            env = link.call(svc.SubmitSignature, server_pb2.SubmitSignatureRequest(
                idempotency_key=f"{env.id}-{d.id}-{revision_sha}", envelope_id=env.id, document_id=d.id,
                one_time_code=code, code_id=kept["code_id"], content=signed)).envelope
        pending.unlink(missing_ok=True)
        results.append({"document": d.id, "signed": True})
    if args.json:
        print(json.dumps({"envelope": env.id, "documents": results}))
    elif code is not None:
        print(_show(env))
    return 0


def _sign_on_token(client: AgentClient, args: argparse.Namespace, content: bytes, d: server_pb2.EnvelopeDocument,
                   recipient: server_pb2.Recipient, *, token: TokenRef, pin: str | None,
                   values: dict[str, str] | None = None, timestamp_url: str = "") -> bytes:
    from .commands import signing_key  # the same default-key rule as `signet sign`

    return sign_revision(client, content, d, recipient, token=token, key_id=signing_key(client, args, token, pin),
                         pin=pin, values=values, timestamp_url=timestamp_url)
