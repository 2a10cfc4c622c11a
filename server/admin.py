"""`signet-admin`: operator commands run on the server host, acting directly on the server's store and token.

::

    signet-admin --config F [--json] org create NAME | org list
    signet-admin --config F person register --org ORG --name NAME --document-type T
                 [--document-number-env VAR | --document-number-file F] [--document-country CC] --phone P --email E
    signet-admin --config F person list --org ORG | person show PERSON
    signet-admin --config F identity send-code PERSON              # phone-possession code via the notifier
    signet-admin --config F identity confirm-phone PERSON [--code-env VAR | --code-file F]
    signet-admin --config F identity approve PERSON --evidence TEXT [--reference R] [--as LOGIN]
    signet-admin --config F identity reject PERSON --reason TEXT [--reference R] [--as LOGIN]
    signet-admin --config F identity unlock-enrollment PERSON --evidence TEXT [--as LOGIN]
    signet-admin --config F outbox list [--to ADDRESS] [--unread] | outbox read MESSAGE_ID
    signet-admin --config F notice list [--event ID] [--envelope ID] [--state S] | notice replay EVENT_ID
    signet-admin --config F cert revoke SERIAL [--reason R] | cert list PERSON
    signet-admin --config F operator-cert issue --org ORG --login LOGIN --out DIR
    signet-admin --config F station-cert issue ORG NAME --out DIR [--api HOST:PORT]
    signet-admin --config F remote-key create PERSON --evidence TEXT --out DIR [--as LOGIN]
    signet-admin --config F audit verify | audit head
    signet-admin --config F contract status ENVELOPE | contract seal ENVELOPE | contract export ENVELOPE --out DIR
    signet-admin --config F contract evidence ENVELOPE -o BUNDLE.zip
    signet-admin --config F archive rotate-kek LABEL | archive retention ORG (--days N | --forever)
    signet-admin --config F archive hold ORG on|off | archive policy ORG | archive shred-expired

Decisions are recorded as ``operator:<login>`` (``--as``, default ``$USER``) with the time and the
evidence text, in the person's digest-chained evidence, beside the OS user who ran signet-admin (the login is
asserted, the OS user is not).  Secrets -- document numbers and one-time codes -- never come from the command
line (other users see it in the process list): an environment variable, a 0600 file, or a prompt.
``notice list`` shows envelope notices and how their delivery went (never their text); ``notice replay`` queues
the notices an envelope event announced once more, recorded as ``operator:<login>`` in the envelope's events
(the running server delivers them within ``[envelopes] scheduler_seconds``).
``station-cert issue`` certifies a signing station (signet-agent in kiosk mode) of organisation ORG named NAME: a
new TLS key and client certificate (role ``station``) in ``--out`` (``station.key`` 0600, ``station.crt``, ``ca.pem``,
``station.json``), the agent's ``[kiosk] station_dir``.  A station may only open card sessions for the holders of the
cards inserted in it (:mod:`server.kiosk`); `cert revoke` with its serial shuts it out.
``remote-key create`` generates a remote-signing key for the person on the server token (:mod:`server.remotekeys`)
and writes the person's API files to ``--out`` (``client.key`` 0600, ``client.crt``, ``ca.pem``,
``identity.json``, and ``csc.json`` 0600: the CSC API client id and secret), for the operator to hand over: with
them `signet envelope ... --identity DIR` reaches the API as that person, without an agent or a token.
``audit verify`` checks the audit log (:mod:`server.audit`): every leaf against its hash, every signed tree head's
root, signature (the audit certificate) and consistency with the one before, and names each leaf or head that is
wrong (exit 1 when one is); ``audit head`` prints the newest signed tree head, signing a new one first when the log
has grown since.
``contract status`` shows whether a completed envelope is sealed (the seal job: attempts, last failure, next
attempt) and its archived objects; ``contract seal`` seals and archives it now instead of waiting for the
running server's sealer (:mod:`server.seal.sealer`); ``contract export`` decrypts the sealed contract's files
into ``--out`` (each sealed document under its name, ``certificate-of-completion.pdf``, ``events.jsonl``).
``archive rotate-kek`` generates a new archive key-encryption key on the server token and re-wraps every data key
under it (content untouched; the old KEK is listed as retired once no key refers to it); ``archive retention``
and ``archive hold`` set an organisation's retention period and legal hold; at the end of retention, under no
hold, the server crypto-shreds the objects (hourly; ``archive shred-expired`` now), each leaving an
``archive.shredded`` tombstone in the audit log.  Every one of these decisions is an audit-log leaf.
``--json`` prints one JSON document.
Exit codes: 0 done, 1 refused by the server's rules (the message says why), 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import x509

from hsm import HsmError
from signet.durable import write_atomic
from signet.secrets import SecretUnavailable, read_secret

from . import audit
from .archive.retention import ARCHIVE_SUBJECT, tombstone
from .audit import AuditLog
from .ca import Role as KeyRole
from .ca import db as ca_db
from .clock import to_text
from .config import ConfigError, load_config
from .errors import InvalidArgument, ServerError
from .identity import Principal, Role
from .runtime import Runtime, open_runtime
from .seal import evidence
from .seal import export as seal_export
from .tls import Caller, certs_pem, issue_client_certificate, key_pem, new_tls_key, tls_csr, write_file


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and type(value).__module__.startswith("server"):
        return value.value
    return value


def _plain_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in d.items()}


def _person(p: Any) -> dict[str, Any]:
    return _plain_dict({"id": p.id, "organisation": p.org_id, "legal_name": p.legal_name,
                        "document_type": p.document_type, "document_country": p.document_country, "phone": p.phone,
                        "email": p.email, "status": p.status.value, "phone_verified_at": p.phone_verified_at,
                        "decided_at": p.decided_at})


def _cert(rec: ca_db.CertRecord) -> dict[str, Any]:
    return _plain_dict({"serial": ca_db.serial_text(rec.serial), "origin": rec.origin, "subject": rec.subject,
                        "person_id": rec.person_id, "status": rec.status, "revocation_reason": rec.revocation_reason,
                        "revoked_at": rec.revoked_at, "not_after": rec.not_after})


def _operator(rt: Runtime, args: argparse.Namespace, person_id: str | None = None) -> Principal:
    org = args.org if getattr(args, "org", None) else rt.identity.org_of(person_id or "")
    return Principal(org, args.login, Role.OPERATOR, via=f"signet-admin run by OS user {getpass.getuser()}")


def _secret(args: argparse.Namespace, env: str, file: str, what: str) -> str:
    try:
        value = read_secret(getattr(args, file), getattr(args, env), prompt=f"{what}: ", what=what)
    except SecretUnavailable as e:
        raise InvalidArgument(str(e)) from None
    if not value:
        flag = env.replace("_", "-")
        raise InvalidArgument(f"give the {what} with --{flag} VAR, --{flag.replace('-env', '-file')} F or on a "
                              "terminal (never as an argument)")
    return value


def _org_create(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    org = ids.create_organisation(args.name)
    return {"id": org.id, "name": org.name}


def _org_list(rt: Runtime, args: argparse.Namespace) -> Any:
    rows = rt.store.query("SELECT id, name, created_at FROM identity_organisations ORDER BY name")
    return [dict(r) for r in rows]


def _person_register(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    p = ids.register_person(_operator(rt, args), legal_name=args.name, document_type=args.document_type,
                            document_number=_secret(args, "document_number_env", "document_number_file",
                                                    "document number"),
                            phone=args.phone, email=args.email,
                            document_country=args.document_country)
    return _person(p)


def _person_list(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    return [_person(p) for p in ids.list_people(_operator(rt, args))]


def _person_show(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    me = _operator(rt, args, args.person)
    return {"person": _person(ids.get_person(me, args.person)),
            "evidence": [_plain({"seq": r.seq, "kind": r.kind, "at": r.at, "actor": r.actor,
                                 "provider": r.provider, "reference": r.reference, "detail": dict(r.detail)})
                         for r in ids.evidence(me, args.person)],
            "certificates": [_cert(c) for c in rt.ca.certificates_of(args.person)]}


def _identity_send_code(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    c = ids.start_phone_verification(_operator(rt, args, args.person), args.person)
    return {"code_id": c.code_id, "expires_at": to_text(c.expires_at), "channel": c.delivery.channel,
            "message_id": c.delivery.message_id}


def _identity_confirm_phone(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    code = _secret(args, "code_env", "code_file", "one-time code")
    return _person(ids.confirm_phone(_operator(rt, args, args.person), args.person, code))


def _identity_unlock_enrollment(rt: Runtime, args: argparse.Namespace) -> Any:
    rt.enrollment.unlock(_operator(rt, args, args.person), args.person, args.evidence)
    return {"person": args.person, "enrollment": "unlocked"}


def _identity_approve(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    return _person(ids.approve(_operator(rt, args, args.person), args.person, evidence=args.evidence,
                               reference=args.reference))


def _identity_reject(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    return _person(ids.reject(_operator(rt, args, args.person), args.person, reason=args.reason,
                              reference=args.reference))


def _outbox_list(rt: Runtime, args: argparse.Namespace) -> Any:
    return [_plain({"id": e.id, "created_at": e.created_at, "topic": e.topic, "to": e.to.value,
                    "subject": e.subject, "read_at": e.read_at})
            for e in rt.outbox.list(to=args.to, unread_only=args.unread)]


def _outbox_read(rt: Runtime, args: argparse.Namespace) -> Any:
    m = rt.outbox.read(args.message)
    return _plain({"id": m.entry.id, "to": m.entry.to.value, "subject": m.entry.subject, "topic": m.entry.topic,
                   "created_at": m.entry.created_at, "body": m.body})


def _notice(n: Any) -> dict[str, Any]:
    return _plain_dict({"id": n.id, "event_id": n.event_id, "envelope_id": n.envelope_id, "kind": n.kind,
                        "person_id": n.person_id, "to": n.to.value, "state": n.state, "attempts": n.attempts,
                        "next_attempt_at": n.next_attempt_at, "in_doubt": n.in_doubt, "last_error": n.last_error,
                        "created_at": n.created_at, "delivered_at": n.delivered_at, "channel": n.channel,
                        "message_ref": n.message_ref, "replay_of": n.replay_of})


def _event_id(text: str) -> int:
    if not text.isdigit():
        raise InvalidArgument(f"an event id is a number (as ListEnvelopeEvents shows it), not {text!r}")
    return int(text)


def _notice_list(rt: Runtime, args: argparse.Namespace) -> Any:
    event = _event_id(args.event) if args.event is not None else None
    return [_notice(n) for n in rt.envelopes.notices.find(envelope_id=args.envelope, event_id=event,
                                                          state=args.state, limit=args.limit)]


def _notice_replay(rt: Runtime, args: argparse.Namespace) -> Any:
    event = _event_id(args.event)
    org = rt.envelopes.org_of_event(event)
    me = Principal(org, args.login, Role.OPERATOR, via=f"signet-admin run by OS user {getpass.getuser()}")
    return [_notice(n) for n in rt.envelopes.replay_notices(me, event)]


def _cert_revoke(rt: Runtime, args: argparse.Namespace) -> Any:
    try:
        serial = int(args.serial.lower().removeprefix("0x").replace(":", ""), 16)
    except ValueError:
        raise InvalidArgument("a certificate serial is hex digits") from None
    return _cert(rt.ca.revoke(serial, args.reason))


def _cert_list(rt: Runtime, args: argparse.Namespace) -> Any:
    return [_cert(c) for c in rt.ca.certificates_of(args.person)]


def _operator_cert_issue(rt: Runtime, args: argparse.Namespace) -> Any:
    ids = rt.identity
    caller = Caller(args.org, Role.OPERATOR, args.login)
    ids.get_organisation(Principal(args.org, args.login, Role.OPERATOR))  # NotFound for an unknown org
    out = Path(args.out)
    key = new_tls_key()
    der = issue_client_certificate(rt.keys, rt.store, rt.clock, rt.urls, tls_csr(key, args.login), caller,
                                   validity=timedelta(days=rt.config.ca.client_validity_days))
    write_file(out / "operator.key", key_pem(key), 0o600)
    write_file(out / "operator.crt", certs_pem(der, rt.keys.certificate_der(KeyRole.TLS_CA)))
    write_file(out / "ca.pem", certs_pem(rt.keys.certificate_der(KeyRole.TLS_ROOT)), overwrite=True)
    return {"caller": caller.uri, "serial": ca_db.serial_text(x509.Certificate.load(der).serial_number),
            "key": str(out / "operator.key"), "certificate": str(out / "operator.crt"), "ca": str(out / "ca.pem")}


def _station_cert_issue(rt: Runtime, args: argparse.Namespace) -> Any:
    caller = Caller(args.org, Role.STATION, args.name)
    rt.identity.get_organisation(Principal(args.org, "signet-admin", Role.OPERATOR))  # NotFound for an unknown org
    out = Path(args.out)
    taken = [n for n in STATION_FILES if (out / n).exists()]
    if taken:
        raise InvalidArgument(f"{out} holds a station already ({', '.join(taken)}): give an empty directory")
    key = new_tls_key()
    der = issue_client_certificate(rt.keys, rt.store, rt.clock, rt.urls, tls_csr(key, args.name), caller,
                                   validity=timedelta(days=rt.config.ca.client_validity_days))
    serial = ca_db.serial_text(x509.Certificate.load(der).serial_number)
    write_file(out / "station.key", key_pem(key), 0o600)
    write_file(out / "station.crt", certs_pem(der, rt.keys.certificate_der(KeyRole.TLS_CA)))
    write_file(out / "ca.pem", certs_pem(rt.keys.certificate_der(KeyRole.TLS_ROOT)), overwrite=True)
    write_file(out / "station.json", json.dumps({"organisation": args.org, "station": args.name, "caller": caller.uri,
                                                 "serial": serial, "api": args.api or ""}, indent=2).encode())
    return {"caller": caller.uri, "serial": serial, "directory": str(out)}


STATION_FILES = ("station.key", "station.crt", "station.json")
REMOTE_FILES = ("client.key", "client.crt", "identity.json", "csc.json")


def _remote_key_create(rt: Runtime, args: argparse.Namespace) -> Any:
    out = Path(args.out)
    taken = [name for name in REMOTE_FILES if (out / name).exists()]
    if taken:  # refused before the key exists: a half-delivered key is worse than none
        raise InvalidArgument(f"{out} holds {', '.join(taken)} already: give an empty or new directory")
    key = new_tls_key()
    made = rt.remote_keys.create(_operator(rt, args, args.person), args.person, args.evidence,
                                 tls_csr(key, args.person))
    if made.tls_certificate_der is None:  # asked for above: the CA always answers a request with a certificate
        raise InvalidArgument("no TLS client certificate was issued")
    write_file(out / "client.key", key_pem(key), 0o600)
    write_file(out / "client.crt", certs_pem(made.tls_certificate_der, *made.tls_chain_der[:1]))
    write_file(out / "ca.pem", certs_pem(rt.keys.certificate_der(KeyRole.TLS_ROOT)), overwrite=True)
    identity = {"person_id": args.person, "api": rt.config.grpc.listen,
                "remote_key_serial": made.key.certificate_serial, "tls_serial": made.key.tls_serial}
    write_file(out / "identity.json", json.dumps(identity, indent=2).encode() + b"\n")
    csc = {"client_id": args.person, "client_secret": made.csc_client_secret,
           "credential_id": made.key.certificate_serial}
    write_file(out / "csc.json", json.dumps(csc, indent=2).encode() + b"\n", 0o600)
    return {"person": args.person, "key_id": made.key.key_id, "serial": made.key.certificate_serial,
            "tls_serial": made.key.tls_serial, "out": str(out)}


class AuditFailed(Exception):
    """``audit verify`` found something wrong: the report is printed, the exit code is 1."""

    def __init__(self, report: Any) -> None:
        super().__init__("the audit log did not verify")
        self.report = report


def _audit_verify(rt: Runtime, args: argparse.Namespace) -> Any:
    report = AuditLog(rt.store).verify(rt.keys.certificate_der(KeyRole.AUDIT))
    out: Any = report.to_dict()
    if not args.json:  # a summary, then one line per problem
        latest = report.latest
        out = [{"verified": "yes" if report.ok else "NO", "leaves": report.leaves, "signed heads": report.heads,
                "latest head": f"tree size {latest.tree_size}, root {latest.root_hash.hex()}, {latest.timestamp}"
                if latest else "none"},
               *(f"problem: {p}" for p in report.problems)]
    if not report.ok:
        raise AuditFailed(out)
    return out


def _audit_head(rt: Runtime, args: argparse.Namespace) -> Any:
    audit = AuditLog(rt.store)
    before = audit.head()
    head = audit.sign_head(rt.keys.signer(KeyRole.AUDIT), rt.clock.now())
    return {**head.to_dict(), "signed_now": before is None or before.tree_size != head.tree_size}


def _contract_status(rt: Runtime, args: argparse.Namespace) -> Any:
    job = rt.sealer.job(args.envelope)
    return {"envelope": args.envelope, "seal": dict(job) if job else {"state": "not started"},
            "objects": [{"kind": o.kind, "document_id": o.document_id, "sha256": o.sha256, "size": o.size,
                         "timestamp_expires_at": o.ts_expires_at} for o in rt.sealer.objects(args.envelope)]}


def _contract_seal(rt: Runtime, args: argparse.Namespace) -> Any:
    objects = rt.sealer.seal(args.envelope)
    return {"envelope": args.envelope, "sealed": [{"kind": o.kind, "document_id": o.document_id,
                                                   "sha256": o.sha256} for o in objects]}


def _contract_export(rt: Runtime, args: argparse.Namespace) -> Any:
    written = seal_export.write(rt.store, rt.archive, args.envelope, Path(args.out))
    return {"envelope": args.envelope, "directory": args.out,
            "objects": [{"file": f.name, "kind": f.kind, "sha256": f.sha256, "size": f.size} for f in written]}


def _contract_evidence(rt: Runtime, args: argparse.Namespace) -> Any:
    bundle = evidence.build(rt.store, rt.archive, rt.keys, rt.sealer.key, args.envelope,
                            actor=f"operator:{args.login}", now=rt.clock.now())
    write_atomic(Path(args.out), bundle.data, 0o600)
    return {"envelope": args.envelope, "bundle": args.out, "bytes": len(bundle.data),
            "files": len((bundle.manifest or {}).get("files", {})) + 2}


def _archive_rotate_kek(rt: Runtime, args: argparse.Namespace) -> Any:
    def progress(done: int, total: int) -> None:
        print(f"re-wrapped {done}/{total} data keys", file=sys.stderr)

    r = rt.archive.rotate_kek(args.label, progress=progress)
    audit.append(rt.store, "archive.kek_rotated", ARCHIVE_SUBJECT, {
        "actor": f"operator:{args.login}", "label": r.label, "version": r.version, "rewrapped": r.rewrapped,
        "retired": list(r.retired)}, rt.clock.now())
    return {"label": r.label, "version": r.version, "rewrapped": r.rewrapped, "retired": list(r.retired)}


def _policy(p: Any) -> dict[str, Any]:
    return {"org": p.org, "retention_days": p.retention_days, "legal_hold": p.legal_hold}


def _archive_retention(rt: Runtime, args: argparse.Namespace) -> Any:
    if args.days is not None and args.days < 1:
        raise InvalidArgument("--days must be at least 1")
    held = rt.archive.policy(args.org).legal_hold
    p = rt.archive.set_policy(args.org, retention_days=None if args.forever else args.days, legal_hold=held)
    audit.append(rt.store, "archive.policy_set", ARCHIVE_SUBJECT, {"actor": f"operator:{args.login}", **_policy(p)},
                 rt.clock.now())
    return _policy(p)


def _archive_hold(rt: Runtime, args: argparse.Namespace) -> Any:
    p = rt.archive.set_legal_hold(args.org, args.state == "on")
    audit.append(rt.store, "archive.policy_set", ARCHIVE_SUBJECT, {"actor": f"operator:{args.login}", **_policy(p)},
                 rt.clock.now())
    return _policy(p)


def _archive_shred(rt: Runtime, args: argparse.Namespace) -> Any:
    now = rt.clock.now()
    done = rt.archive.shred_expired(now, lambda s: tombstone(rt.store, s, now))
    return {"shredded": [{"org": s.org, "object": s.sha256, "size": s.size} for s in done]}


Handler = Callable[[Runtime, argparse.Namespace], Any]
COMMANDS: dict[tuple[str, str], Handler] = {
    ("org", "create"): _org_create,
    ("org", "list"): _org_list,
    ("person", "register"): _person_register,
    ("person", "list"): _person_list,
    ("person", "show"): _person_show,
    ("identity", "send-code"): _identity_send_code,
    ("identity", "confirm-phone"): _identity_confirm_phone,
    ("identity", "unlock-enrollment"): _identity_unlock_enrollment,
    ("identity", "approve"): _identity_approve,
    ("identity", "reject"): _identity_reject,
    ("outbox", "list"): _outbox_list,
    ("outbox", "read"): _outbox_read,
    ("notice", "list"): _notice_list,
    ("notice", "replay"): _notice_replay,
    ("cert", "revoke"): _cert_revoke,
    ("cert", "list"): _cert_list,
    ("operator-cert", "issue"): _operator_cert_issue,
    ("station-cert", "issue"): _station_cert_issue,
    ("remote-key", "create"): _remote_key_create,
    ("audit", "verify"): _audit_verify,
    ("audit", "head"): _audit_head,
    ("contract", "status"): _contract_status,
    ("contract", "seal"): _contract_seal,
    ("contract", "export"): _contract_export,
    ("contract", "evidence"): _contract_evidence,
    ("archive", "rotate-kek"): _archive_rotate_kek,
    ("archive", "retention"): _archive_retention,
    ("archive", "hold"): _archive_hold,
    ("archive", "policy"): lambda rt, args: _policy(rt.archive.policy(args.org)),
    ("archive", "shred-expired"): _archive_shred,
}


def run(rt: Runtime, args: argparse.Namespace) -> Any:
    handler = COMMANDS.get((args.area, args.action))
    if handler is None:
        raise InvalidArgument(f"unknown command {args.area} {args.action}")
    return handler(rt, args)


def _remote_key_arguments(actions: Any) -> None:
    rk = actions.add_parser("create", help="a signing key held for PERSON on the server token")
    rk.add_argument("person")
    rk.add_argument("--evidence", required=True, help="what the decision is based on (recorded)")
    rk.add_argument("--out", required=True, help="directory for the person's API files (client.key 0600, ...)")


def _more_areas(area: Callable[[str], Any]) -> None:
    _remote_key_arguments(area("remote-key"))
    audit = area("audit")
    audit.add_parser("verify", help="check every leaf, signed head and signature of the audit log")
    audit.add_parser("head", help="the newest signed tree head (signed now when the log has grown)")
    contract = area("contract")
    contract.add_parser("status", help="whether a completed envelope is sealed, and its archived objects"
                        ).add_argument("envelope")
    contract.add_parser("seal", help="seal and archive a completed envelope now (the server does it by itself)"
                        ).add_argument("envelope")
    export = contract.add_parser("export", help="decrypt a sealed contract's archived files into a directory")
    export.add_argument("envelope")
    export.add_argument("--out", required=True)
    _archive_arguments(area("archive"))
    evidence = contract.add_parser("evidence", help="the evidence bundle of a sealed contract (a zip)")
    evidence.add_argument("envelope")
    evidence.add_argument("-o", "--out", required=True)


def _archive_arguments(archive: Any) -> None:
    rot = archive.add_parser("rotate-kek", help="a new archive KEK on the server token; every data key re-wrapped")
    rot.add_argument("label", help="the new KEK's label (e.g. signet-archive-kek-2)")
    ret = archive.add_parser("retention", help="an organisation's retention period (crypto-shredding at its end)")
    ret.add_argument("org")
    group = ret.add_mutually_exclusive_group(required=True)
    group.add_argument("--days", type=int, help="keep archived objects this many days")
    group.add_argument("--forever", action="store_true", help="no retention end (the default)")
    hold = archive.add_parser("hold", help="legal hold on or off: nothing of the organisation is shredded while on")
    hold.add_argument("org")
    hold.add_argument("state", choices=("on", "off"))
    archive.add_parser("policy", help="an organisation's retention and legal hold").add_argument("org")
    archive.add_parser("shred-expired", help="crypto-shred now what is past retention (the server does it hourly)")


def _client_cert_arguments(area: Callable[[str], Any]) -> None:
    op = area("operator-cert").add_parser("issue")
    for flag in ("--org", "--login", "--out"):
        op.add_argument(flag, required=True)
    st = area("station-cert").add_parser("issue", help="a TLS client certificate for a signing station (kiosk)")
    st.add_argument("org")
    st.add_argument("name", help="the station's name: letters, digits and _ . @ -")
    st.add_argument("--out", required=True)
    st.add_argument("--api", default="", help="the API listener's HOST:PORT as the station reaches it")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signet-admin", description="Signet server administration (on the server host).")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--as", dest="login", default=os.environ.get("USER") or "admin",
                   help="the operator login recorded with decisions (default $USER)")
    areas = p.add_subparsers(dest="area", required=True)

    def area(name: str) -> Any:
        return areas.add_parser(name).add_subparsers(dest="action", required=True)

    org = area("org")
    org.add_parser("create").add_argument("name")
    org.add_parser("list")
    person = area("person")
    reg = person.add_parser("register")
    for flag in ("--org", "--name", "--document-type", "--phone", "--email"):
        reg.add_argument(flag, required=True)
    reg.add_argument("--document-number-env", metavar="VAR", help="the document number from this variable")
    reg.add_argument("--document-number-file", metavar="F", help="... from the first line of this 0600 file")
    reg.add_argument("--document-country")
    person.add_parser("list").add_argument("--org", required=True)
    person.add_parser("show").add_argument("person")
    ident = area("identity")
    ident.add_parser("send-code").add_argument("person")
    confirm = ident.add_parser("confirm-phone")
    confirm.add_argument("person")
    confirm.add_argument("--code-env", metavar="VAR", help="the one-time code from this variable")
    confirm.add_argument("--code-file", metavar="F", help="... from the first line of this 0600 file")
    unlock = ident.add_parser("unlock-enrollment")
    unlock.add_argument("person")
    unlock.add_argument("--evidence", required=True)
    for action, text in (("approve", "--evidence"), ("reject", "--reason")):
        a = ident.add_parser(action)
        a.add_argument("person")
        a.add_argument(text, required=True)
        a.add_argument("--reference", default="")
    outbox = area("outbox")
    lst = outbox.add_parser("list")
    lst.add_argument("--to")
    lst.add_argument("--unread", action="store_true")
    outbox.add_parser("read").add_argument("message")
    notice = area("notice")
    nl = notice.add_parser("list")
    nl.add_argument("--event")
    nl.add_argument("--envelope")
    nl.add_argument("--state", choices=("pending", "delivered", "failed", "cancelled"))
    nl.add_argument("--limit", type=int, default=100)
    notice.add_parser("replay").add_argument("event")
    cert = area("cert")
    rv = cert.add_parser("revoke")
    rv.add_argument("serial")
    rv.add_argument("--reason", default="unspecified")
    cert.add_parser("list").add_argument("person")
    _client_cert_arguments(area)
    _more_areas(area)
    return p


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        if isinstance(row, dict):
            for k, v in row.items():
                text = v if not isinstance(v, list | dict) else json.dumps(v, ensure_ascii=False, default=str)
                print(f"{k}: {text}")
            print()
        else:
            print(row)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"signet-admin: configuration error: {e}", file=sys.stderr)
        return 2
    try:
        rt = open_runtime(cfg)
    except (ServerError, HsmError) as e:
        print(f"signet-admin: cannot open the server's state: {e}", file=sys.stderr)
        return 2
    try:
        _print(run(rt, args), args.json)
        return 0
    except AuditFailed as e:
        _print(e.report, args.json)
        print(f"signet-admin: {e}", file=sys.stderr)
        return 1
    except ServerError as e:
        print(f"signet-admin: {e.reason}: {e.message}", file=sys.stderr)
        return 1
    except FileExistsError as e:
        print(f"signet-admin: {e}", file=sys.stderr)
        return 1
    finally:
        rt.close()


if __name__ == "__main__":
    sys.exit(main())
