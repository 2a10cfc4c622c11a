"""The server under crash soak, envelope operations: two-party envelopes created, sent, signed by enrolled people
with keys on a SoftHSM token, or declined by the second signer, while the server is killed at random moments.

People: pairs registered, phone-verified, approved and enrolled before the first round (a key on the soak's
SoftHSM user token, its certificate stored next to it, the agent TLS files in the work directory); a pair that
has used most of its phones' hourly code allowance (``[otp] hourly_limit``) is replaced by a fresh one.  Each
thread runs one envelope at a time, as one person's client would: create (Alice, the first signer, sends),
send, then each signer's turn -- GetDocument, StartSigning for that revision, the code read from the outbox
(:meth:`ServerSide.code`), the revision signed in-process (``formats.sign_pdf`` with ``TokenSigner`` into the
field ``signet-<recipient id>``), SubmitSignature -- or, for every third envelope, a decline by the second
signer.  A pair's every fourth envelope (from its first) is bulk-sent instead: the pair's template (a draft
made once, signers ``{{first}}`` (order 1) and ``{{second}}``, title ``Soak bulk {{n}}``) goes to
BulkSendEnvelopes with 1 to 3 rows naming the pair (``n`` unique per row), and the first row's envelope goes on
as above (the others stay sent).  Every call carries an idempotency key, and a call cut off by the kill is
retried after the restart exactly as it was (same key, same rows, same signed bytes, same code): a retried call
must act once (``envelope_retried`` counts the retries that went through).  Acknowledged: the call returned OK
(and its answer shows what was asked); a bulk send per row (``envelope_bulk_sent``), the template once
(``envelope_template``).

Remote signing: every third new pair (from the first) has a second party without a token key.  The approving
reviewer (four eyes: not the operator who registered them) creates their remote-signing key through
CreateRemoteKey with a TLS CSR for a key made here (acknowledged ``remote_key_created``), the TLS client files
written under ``envelope-parties/<person id>``.  Their envelopes (and their pair's template) name them with
signing method REMOTE; their turn is GetDocument, StartSigning (the code from the outbox), SignRemotely naming
that revision with an idempotency key (acknowledged ``envelope_signed_remotely``: envelope, recipient, the
revision SHA-256 returned).  A SignRemotely cut off by the kill is retried exactly as it was (same key, same
code) and must act once; the one legitimate refusal is OTP_USED when the kill fell between the activation's
commit and the revision's (the store shows that code's ``activated`` event and no signature made with it:
``envelope_activation_cut``), and then the turn starts afresh (StartSigning, SignRemotely with a new key).

After each restart, read from the store read-only:

* every acknowledged creation (the original revision, its SHA-256), send (state, ``sent_at`` to the
  millisecond, the locked SHA-256), signature (a revision by that recipient whose SHA-256 is the one submitted,
  the recipient ``signed``), decline (state, recipient, reason) and completion is there; every acknowledged
  bulk row (sent, its substituted title and recipients, the template's document locked, its ``created`` event
  naming the template and row) and template (still a draft, placeholders and document intact);
* no envelope stuck half-way: a recipient's revision without the recipient ``signed`` (or the reverse), a
  group done without the next notified, a later group notified early, every signer done but not ``completed``,
  ``completed`` without every signature, a declined envelope without exactly one declining recipient;
* events consistent with states: one ``created`` (first), one ``sent`` iff sent, one ``notified`` per recipient
  past ``pending`` with their ``notified_at`` (where notices are queued and delivered after the change: that,
  or their first notice still in the queue), one ``viewed`` iff ``viewed_at``, one ``signed`` per revision (same
  recipient, sequence and SHA-256), one ``declined``/``completed`` iff the state says so;
* no duplicate: one envelope per create or bulk row (titles are unique; one per template and row title), one
  template per pair, one revision per recipient and document, revision numbers 0, 1, 2 ... and each revision an
  extension of the one before;
* every acknowledged remote key there (the person's ``remote_keys`` row, that certificate serial); every
  acknowledged remote signature there as a signature is, its ``signed`` event saying ``remote``; exactly one
  ``activated`` event (before it: same recipient, document, code id, certificate, the revision it extends) per
  remote revision; a code activated at most once; an activation without its signature only for a code whose
  SignRemotely call was cut off by a kill (then never two revisions: the duplicate check); no ``activated``
  event holding a code (no ``code``/``one_time_code``/``otp`` field, no value equal to the code sent);
* every revision's blob present, hashing to its name; at most one notice per envelope, address and topic in the
  outbox (reminders aside);
* this round's envelopes as the API shows them (GetEnvelope, GetDocument) agree with the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import queue
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.server_harness import ClientFiles, channel

from .framework import AckLog, describe, load_generator, read_only, repeat
from .server_load import ServerSide, ServerState

CODE_BUDGET = 40  # codes a pair's phones may get before fresh people take over ([otp] hourly_limit is 50 here)
DECLINE_EVERY = 3  # every third envelope is declined by its second signer
BULK_EVERY = 4  # a pair's every fourth envelope (from its first; with up to two more) is bulk-sent instead
REMOTE_EVERY = 3  # every third new pair (from the first): the second party signs remotely (a server-held key)
TITLE = "Soak lease "
BULK_TITLE = "Soak bulk "
TEMPLATE_TITLE = BULK_TITLE + "{{n}}"  # the pair's template: its signers are {{first}} and {{second}}
PLACEHOLDERS = ("{{first}}", "{{second}}")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _utc(text: str | None) -> dt.datetime | None:
    """A store time (server.clock's text format) as an aware datetime."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC) if text else None


@dataclass
class Party:
    """An enrolled person: the signing key on the soak's user token, the agent TLS files for the API; or
    (``remote``) a person with a remote-signing key on the server token and the TLS client files CreateRemoteKey
    certified for them."""

    person_id: str
    phone: str
    key_id: str  # "" for a remote party
    files: ClientFiles
    codes: int = 2  # one-time codes sent to the phone so far (phone verification, enrollment)
    signer: Any = None  # formats.TokenSigner, made on first use
    remote: bool = False


@dataclass
class Pending:
    """A signature made and not yet acknowledged: retried as it is (same key, bytes and code) after a crash."""

    key: str
    content: bytes = field(repr=False)
    code: str = field(repr=False)
    code_id: str
    previous: str  # the SHA-256 of the revision it extends (a remote signature: the revision named, activated)


@dataclass(frozen=True)
class Template:
    """A pair's bulk-send template: a draft whose signers are ``{{first}}`` (order 1) and ``{{second}}``."""

    id: str
    sha256: str  # its document, which every row's envelope locks


@dataclass
class Journey:
    """One envelope from creation to completion or decline, as one thread drives it.  A bulk journey (every
    :data:`BULK_EVERY`-th of the pair's, from its first) sends 1 to 3 envelopes at once from the pair's template
    instead of create and send, and goes on with the first of them."""

    n: int
    first: Party  # the sender, who signs first
    second: Party
    k: int = 0  # the pair's how-manyth journey (from 0)
    stage: str = "create"  # create, send (or bulk, opened), first, second, done
    envelope_id: str = ""
    document_id: str = ""
    original: str = ""  # SHA-256 of the document as created
    recipients: dict[str, str] = field(default_factory=dict)  # person id -> recipient id
    pending: Pending | None = None
    cut_off: str = ""  # the stage whose call failed (the kill): its next success is a retry
    activation: int = 0  # the remote signer's how-manyth activation (a fresh one after one cut by the kill)

    @property
    def title(self) -> str:
        return f"{TITLE}{self.n}"

    @property
    def declines(self) -> bool:
        return self.n % DECLINE_EVERY == 0

    @property
    def bulk(self) -> bool:
        return self.k % BULK_EVERY == 0

    @property
    def bulk_titles(self) -> list[str]:
        """The titles of the bulk rows (the row's ``n`` substituted): the same on every retry of the call."""
        return [f"{BULK_TITLE}{self.n}.{i}" for i in range(1 + self.n % 3)]


@dataclass
class Snapshot:
    """The envelope tables, read-only, after a restart."""

    envelopes: dict[str, dict[str, Any]]
    documents: dict[str, list[dict[str, Any]]]  # envelope id -> rows
    recipients: dict[str, list[dict[str, Any]]]  # envelope id -> rows, in position order
    revisions: dict[str, list[dict[str, Any]]]  # document id -> rows, in seq order
    events: dict[str, list[dict[str, Any]]]  # envelope id -> rows (detail parsed), in id order
    queued: set[str] | None = None  # recipient ids with a first notice still queued (None: no notice queue)
    remote_keys: dict[str, str] = field(default_factory=dict)  # person id -> their remote key's certificate serial


class _Stubs:
    """One EnvelopeService stub per party, over that person's agent certificate; channels closed at the end."""

    def __init__(self, side: ServerSide) -> None:
        self.side = side
        self._open: dict[str, tuple[Any, Any]] = {}

    def __call__(self, p: Party) -> Any:
        from signet.v1 import server_pb2_grpc as pbg

        if p.person_id not in self._open:
            ch = channel(self.side.env, p.files)
            self._open[p.person_id] = (ch, pbg.EnvelopeServiceStub(ch))
        return self._open[p.person_id][1]

    def close(self) -> None:
        for ch, _ in self._open.values():
            ch.close()
        self._open.clear()


# -- what an acknowledged operation must have left in the store ("" when it is there) -------------------------------
def _created(snap: Snapshot, a: Any) -> str:
    env = snap.envelopes.get(a.key)
    if env is None:
        return "not in the store"
    originals = [r["sha256"] for d in snap.documents.get(a.key, []) for r in snap.revisions.get(d["id"], [])
                 if r["seq"] == 0]
    if env["title"] != a.data["title"] or originals != [a.data["sha256"]]:
        return (f"stored as {env['title']!r} with originals {originals}, created as {a.data['title']!r} with "
                f"{a.data['sha256']}")
    return ""


def _sent(snap: Snapshot, a: Any) -> str:
    env = snap.envelopes.get(a.key)
    if env is None or env["state"] == "draft":
        return f"the envelope is {env and env['state']}"
    if _utc(env["sent_at"]) != dt.datetime.fromisoformat(a.data["sent_at"]):
        return f"sent at {a.data['sent_at']} (acknowledged), stored {env['sent_at']}"
    locked = [d["locked_sha256"] for d in snap.documents.get(a.key, [])]
    return "" if locked == [a.data["sha256"]] else f"documents locked as {locked}, sent with {a.data['sha256']}"


def _signed(snap: Snapshot, a: Any) -> str:
    revs = [r["sha256"] for r in snap.revisions.get(a.data["document"], []) if r["recipient_id"] == a.data["recipient"]]
    if revs != [a.data["sha256"]]:
        return f"revisions of recipient {a.data['recipient']}: {revs}, signed {a.data['sha256']}"
    rec = next((r for r in snap.recipients.get(a.data["envelope"], []) if r["id"] == a.data["recipient"]), None)
    if rec is None or rec["state"] != "signed" or not rec["signed_at"] or not rec["certificate_serial"]:
        return f"the recipient is {rec and (rec['state'], rec['signed_at'], rec['certificate_serial'])}"
    return ""


def _signed_remotely(snap: Snapshot, a: Any) -> str:
    """A remote signature: there as a token one is, its ``signed`` event says ``remote``, and exactly one
    ``activated`` event (before it) spent its code for the revision it extends."""
    lost = _signed(snap, a)
    if lost:
        return lost
    events = snap.events.get(a.data["envelope"], [])
    signed = [e["detail"] for e in events if e["type"] == "signed" and
              (e["detail"].get("recipient_id"), e["detail"].get("sha256")) == (a.data["recipient"], a.data["sha256"])]
    if len(signed) != 1 or signed[0].get("method") != "remote":
        seen = [(d.get("method"), d.get("code_id")) for d in signed]
        return f"'signed' events of revision {a.data['sha256']}: {seen}"
    code_id = signed[0].get("code_id")
    acts = [e["detail"] for e in events if e["type"] == "activated" and e["detail"].get("code_id") == code_id]
    if [d.get("revision_sha256") for d in acts] != [a.data["previous"]]:
        return (f"{len(acts)} activation(s) with its code {code_id} for {[d.get('revision_sha256') for d in acts]}, "
                f"signed over {a.data['previous']}")
    return ""


FORBIDDEN_DETAIL = ("code", "one_time_code", "otp", "otp_code")  # an activation names its code id, never the code


def _activations(snap: Snapshot, cut: set[str], codes: dict[str, str]) -> list[str]:
    """Every remote revision has exactly one ``activated`` event before its ``signed`` event (same recipient,
    document, code, revision hashed, certificate); a code activates once; an activation without its signature only
    where a SignRemotely call was cut off by a kill (``cut``: their code ids; the code is spent, no revision, the
    retry asked for a fresh code); no activation's detail holds a code (``codes``: code id -> the code used)."""
    problems = []
    for envelope_id, events in snap.events.items():
        acts = [(i, e["detail"]) for i, e in enumerate(events) if e["type"] == "activated"]
        signed = [(i, e["detail"]) for i, e in enumerate(events)
                  if e["type"] == "signed" and e["detail"].get("method") == "remote"]
        where = f"envelope {envelope_id}"
        problems += [f"{where}: code {c} activated {n} times" for c, n in
                     Counter(d.get("code_id") for _, d in acts).items() if n > 1]
        for i, s in signed:
            mine = [(j, d) for j, d in acts if d.get("code_id") == s.get("code_id")]
            want = (s.get("recipient_id"), s.get("document_id"), s.get("previous_sha256"), s.get("certificate_serial"))
            if len(mine) != 1 or mine[0][0] > i or (mine[0][1].get("recipient_id"), mine[0][1].get("document_id"),
                                                    mine[0][1].get("revision_sha256"),
                                                    mine[0][1].get("certificate_serial")) != want:
                problems.append(f"{where}: remote revision {s.get('sha256')} of recipient {s.get('recipient_id')} "
                                f"(code {s.get('code_id')}) has {len(mine)} activation(s) "
                                f"{[d for _, d in mine]}, not one before it for {want}")
        used = {s.get("code_id") for _, s in signed}
        problems += [f"{where}: recipient {d.get('recipient_id')} activated with code {d.get('code_id')} for "
                     f"{d.get('revision_sha256')} without a signature, and no SignRemotely with that code was cut off "
                     "by a kill" for _, d in acts if d.get("code_id") not in used and d.get("code_id") not in cut]
        for _, d in acts:
            code = codes.get(d.get("code_id", ""))
            if any(k in d for k in FORBIDDEN_DETAIL) or (code and any(v == code for v in d.values())):
                problems.append(f"{where}: the 'activated' event of code {d.get('code_id')} holds a code: "
                                f"{sorted(d)}")
    return problems


def _remote_key(snap: Snapshot, a: Any) -> str:
    serial = snap.remote_keys.get(a.key)
    return "" if serial == a.data["serial"] else f"the person's remote key is {serial}, created {a.data['serial']}"


def _bulk_origin(snap: Snapshot, envelope_id: str) -> dict[str, Any] | None:
    """``{"template_id", "row"}`` of an envelope a bulk send created (its ``created`` event says so), else None."""
    created = [e for e in snap.events.get(envelope_id, []) if e["type"] == "created"]
    return created[0]["detail"].get("bulk") if created else None


def _bulk_sent(snap: Snapshot, a: Any) -> str:
    """A row of a bulk send: its own envelope, sent, with the row's values in its title and recipients, the
    template's document locked, created from that template's row."""
    env = snap.envelopes.get(a.key)
    if env is None:
        return "not in the store"
    if env["state"] == "draft" or not env["sent_at"]:
        return f"the envelope is {env['state']}, sent_at {env['sent_at']}"
    if env["title"] != a.data["title"]:
        return f"titled {env['title']!r}, sent as {a.data['title']!r}"
    people = [(r["person_id"], r["routing_order"]) for r in snap.recipients.get(a.key, [])]
    if people != [(p, o) for o, p in enumerate(a.data["recipients"], 1)]:
        return f"recipients {people}, the row named {a.data['recipients']}"
    locked = [d["locked_sha256"] for d in snap.documents.get(a.key, [])]
    if locked != [a.data["sha256"]]:
        return f"documents locked as {locked}, the template's is {a.data['sha256']}"
    origin = _bulk_origin(snap, a.key)
    if origin != {"template_id": a.data["template"], "row": a.data["row"]}:
        return f"created from {origin}, sent as row {a.data['row']} of {a.data['template']}"
    return ""


def _template(snap: Snapshot, a: Any) -> str:
    """A pair's template: still a draft (a bulk send leaves it alone), its placeholders and document intact."""
    env = snap.envelopes.get(a.key)
    if env is None:
        return "not in the store"
    people = [r["person_id"] for r in snap.recipients.get(a.key, [])]
    originals = [r["sha256"] for d in snap.documents.get(a.key, []) for r in snap.revisions.get(d["id"], [])]
    if env["state"] != "draft" or env["title"] != TEMPLATE_TITLE or people != list(PLACEHOLDERS) \
            or originals != [a.data["sha256"]]:
        return (f"the template is {env['state']}, titled {env['title']!r}, recipients {people}, revisions "
                f"{originals}")
    return ""


def _completed(snap: Snapshot, a: Any) -> str:
    env = snap.envelopes.get(a.key)
    ok = env is not None and env["state"] == "completed" and env["completed_at"]
    return "" if ok else f"the envelope is {env and (env['state'], env['completed_at'])}"


def _declined(snap: Snapshot, a: Any) -> str:
    env = snap.envelopes.get(a.key)
    rec = next((r for r in snap.recipients.get(a.key, []) if r["id"] == a.data["recipient"]), None)
    if env is None or env["state"] != "declined" or rec is None or rec["state"] != "declined" \
            or rec["decline_reason"] != a.data["reason"]:
        return f"the envelope is {env and env['state']}, the recipient {rec and (rec['state'], rec['decline_reason'])}"
    return ""


ACKNOWLEDGED = {"envelope_created": _created, "envelope_sent": _sent, "envelope_signed": _signed,
                "envelope_signed_remotely": _signed_remotely, "remote_key_created": _remote_key,
                "envelope_completed": _completed, "envelope_declined": _declined, "envelope_template": _template,
                "envelope_bulk_sent": _bulk_sent}


# -- one envelope's consistency ---------------------------------------------------------------------------------------
@dataclass
class _View:
    env: dict[str, Any]
    recipients: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    revisions: dict[str, list[dict[str, Any]]]  # document id -> rows
    events: list[dict[str, Any]]
    by_recipient: dict[str, list[dict[str, Any]]]  # recipient id -> their revisions (with document_id)
    per: dict[tuple[str, str], list[dict[str, Any]]]  # (event type, recipient id) -> events
    queued: set[str] | None  # recipients whose first notice is still queued (None: notices are sent at once)

    @classmethod
    def of(cls, snap: Snapshot, envelope_id: str) -> _View:
        docs = snap.documents.get(envelope_id, [])
        revisions = {d["id"]: snap.revisions.get(d["id"], []) for d in docs}
        by_recipient: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for doc_id, revs in revisions.items():
            for r in revs[1:]:
                by_recipient[r["recipient_id"]].append({**r, "document_id": doc_id})
        events = snap.events.get(envelope_id, [])
        per: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for e in events:
            if "recipient_id" in e["detail"]:
                per[(e["type"], e["detail"]["recipient_id"])].append(e)
        return cls(snap.envelopes[envelope_id], snap.recipients.get(envelope_id, []), docs, revisions, events,
                   by_recipient, per, snap.queued)

    @property
    def signers(self) -> list[dict[str, Any]]:
        return [r for r in self.recipients if r["role"] != "copy"]


def _revision_states(v: _View) -> list[str]:
    out = []
    for doc_id, revs in v.revisions.items():
        if [r["seq"] for r in revs] != list(range(len(revs))) or not revs or revs[0]["kind"] != "original":
            out.append(f"document {doc_id}: revisions {[(r['seq'], r['kind']) for r in revs]}")
    for r in v.signers:
        mine = v.by_recipient.get(r["id"], [])
        if (r["state"] == "signed") != (len(mine) == len(v.documents)):
            out.append(f"recipient {r['id']} is {r['state']} with {len(mine)} of {len(v.documents)} document(s) "
                       "signed: stuck half-way")
        if r["state"] == "signed" and (not r["signed_at"] or not r["certificate_serial"]):
            out.append(f"recipient {r['id']} is signed without a time or certificate")
    signers = {r["id"] for r in v.signers}
    out += [f"a revision by {rid}, who is no signer of this envelope" for rid in v.by_recipient if rid not in signers]
    return out


def _routing(v: _View) -> list[str]:
    state = v.env["state"]
    unsigned = [r["routing_order"] for r in v.signers if r["state"] != "signed"]
    out = []
    if state == "sent" and not unsigned:
        out.append("every signer has signed, the envelope is not completed: stuck half-way")
    if state == "sent" and unsigned:
        current = min(unsigned)
        out += [f"recipient {r['id']} (order {r['routing_order']}) still pending while group {current} signs: "
                "routing not advanced"
                for r in v.recipients if r["routing_order"] <= current and r["state"] == "pending"]
        out += [f"recipient {r['id']} (order {r['routing_order']}) is {r['state']} before group {current} is done"
                for r in v.recipients if r["routing_order"] > current and r["state"] != "pending"]
    if state == "completed" and (unsigned or not v.env["completed_at"]):
        out.append(f"completed without every signature ({len(unsigned)} missing) or without completed_at")
    if state == "declined" and (sum(r["state"] == "declined" for r in v.recipients) != 1 or not v.env["ended_at"]):
        out.append("declined, but not by exactly one recipient, or without ended_at")
    if state == "draft" and (v.env["sent_at"] or v.by_recipient or any(r["state"] != "pending" for r in v.recipients)):
        out.append("a draft with a send time, a notified recipient or a signature")
    return out


def _envelope_events(v: _View) -> list[str]:
    kinds = Counter(e["type"] for e in v.events)
    state = v.env["state"]
    out = []
    if not v.events or v.events[0]["type"] != "created" or kinds["created"] != 1:
        out.append(f"events do not start with one 'created': {[e['type'] for e in v.events][:5]}")
    if kinds["sent"] != (state != "draft") or (state != "draft") != bool(v.env["sent_at"]):
        out.append(f"{kinds['sent']} 'sent' event(s), sent_at {v.env['sent_at']}")
    out += [f"{kinds[kind]} {kind!r} event(s)" for kind in ("completed", "declined") if kinds[kind] != (state == kind)]
    return out


def _notified(v: _View, r: dict[str, Any], notified: list[dict[str, Any]]) -> list[str]:
    """A recipient past ``pending`` was told: one ``notified`` event carrying their ``notified_at`` -- or, where
    notices go through the queue (delivered after the change commits), their first notice still queued."""
    rid, told = r["id"], r["state"] != "pending"
    if len(notified) > 1 or (notified and not told):
        return [f"recipient {rid} is {r['state']} with {len(notified)} 'notified' event(s)"]
    if notified and _utc(notified[0]["detail"].get("notified_at")) != _utc(r["notified_at"]):
        return [f"recipient {rid}: notified_at {r['notified_at']}, its event says "
                f"{notified[0]['detail'].get('notified_at')}"]
    if bool(notified) != bool(r["notified_at"]):
        return [f"recipient {rid}: notified_at {r['notified_at']} with {len(notified)} 'notified' event(s)"]
    if told and not notified and (v.queued is None or rid not in v.queued):
        return [f"recipient {rid} is {r['state']}, never notified and no notice queued: a lost notice"]
    return []


def _recipient_events(v: _View) -> list[str]:
    out = []
    for r in v.recipients:
        rid = r["id"]
        notified, viewed, declined = (v.per.get((t, rid), []) for t in ("notified", "viewed", "declined"))
        out += _notified(v, r, notified)
        if len(viewed) != bool(r["viewed_at"]):
            out.append(f"recipient {rid}: viewed_at {r['viewed_at']} with {len(viewed)} 'viewed' event(s)")
        if len(declined) != (r["state"] == "declined"):
            out.append(f"recipient {rid} is {r['state']} with {len(declined)} 'declined' event(s)")
        signed = sorted((e["detail"].get("document_id"), e["detail"].get("seq"), e["detail"].get("sha256"))
                        for e in v.per.get(("signed", rid), []))
        revs = sorted((x["document_id"], x["seq"], x["sha256"]) for x in v.by_recipient.get(rid, []))
        if signed != revs:
            out.append(f"recipient {rid}: 'signed' events {signed}, revisions {revs}")
    return out


def _method(p: Party) -> Any:
    from signet.v1 import server_pb2 as pb

    return pb.SIGNING_METHOD_REMOTE if p.remote else pb.SIGNING_METHOD_TOKEN


@load_generator("server", "envelopes")
class Envelopes:
    name = "envelopes"
    threads = 2

    def __init__(self, side: ServerSide) -> None:
        self.side = side
        self._dir = side.directory / "envelope-parties"
        self._lock = threading.Lock()
        self._n = itertools.count(1)
        self._senders: dict[str, Party] = {}  # envelope id -> its sender (for the API checks)
        self._templates: dict[tuple[str, str], Template] = {}  # (first, second) person ids -> their template
        self._verified: dict[str, int] = {}  # blob sha256 -> size, hashed once (blobs are write-once)
        self._notices: dict[str, tuple[str, str, str]] = {}  # outbox id -> (envelope, address, topic)
        self._pairs = itertools.count()
        self._cut_codes: set[str] = set()  # code ids of SignRemotely calls cut off by a kill
        self._remote_codes: dict[str, str] = {}  # code id -> the code a remote signer was sent
        self._journeys: queue.Queue[Journey] = queue.Queue()
        for _ in range(self.threads):  # before the first round, with the server up: nothing to judge yet
            self._journeys.put(self._journey(*self._pair()))

    # -- people --------------------------------------------------------------------------------------------------
    def _pair(self) -> tuple[Party, Party]:
        """A new pair; every :data:`REMOTE_EVERY`-th (from the first) has a second party who signs remotely."""
        with self._lock:
            k = next(self._pairs)
        return self._party(), self._party(remote=k % REMOTE_EVERY == 0)

    def _party(self, remote: bool = False) -> Party:
        """Register, verify the phone, approve (second operator) and enrol a new person, a key on the user token;
        or (``remote``) have the approving operator create their remote-signing key (four eyes: not the one who
        registered them) with a TLS client certificate for a key made here, its files under the work dir."""
        from agent.enroll import enroll
        from agent.serverlink import ServerLink, ServerTarget
        from signet.v1 import server_pb2 as pb
        from signet.v1 import server_pb2_grpc as pbg

        side = self.side
        r = side.running
        name, doc, phone, email = side.new_person()
        with channel(r.env, r.op_a) as op, channel(r.env, r.reviewer_a) as rev:
            ids = pbg.IdentityServiceStub(op)
            person = ids.RegisterPerson(pb.RegisterPersonRequest(
                legal_name=name, document_type="prc_resident_id", document_number=doc, phone=phone, email=email),
                timeout=30).person
            challenge = ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=person.id),
                                                   timeout=30).challenge
            ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=person.id, code=side.code(phone, 6),
                                                    code_id=challenge.code_id), timeout=30)
            pbg.IdentityServiceStub(rev).ApprovePerson(pb.ApprovePersonRequest(
                person_id=person.id, evidence="ID card inspected", reference=f"soak-envelopes-{person.id}"),
                timeout=30)
        tls = self._dir / person.id
        if remote:
            return self._remote_party(person.id, phone, rev_files=r.reviewer_a, tls=tls)
        with ServerLink(ServerTarget(enroll=side.env.enroll, ca_pem=side.env.ca_pem.read_bytes())) as link:
            c = link.start_enrollment(person.id)
            res = enroll(side._user, link, person.id, side.code(phone, 8), code_id=c.code_id,
                         key_label=f"soak-envelopes-{person.id}", tls_dir=tls)
        return Party(person.id, phone, res.key_id, ClientFiles(tls / "agent.crt", tls / "agent.key", tls / "ca.pem"))

    def _remote_party(self, person_id: str, phone: str, rev_files: ClientFiles, tls: Any) -> Party:
        from server.tls import certs_pem, key_pem, new_tls_key, tls_csr
        from signet.v1 import server_pb2 as pb
        from signet.v1 import server_pb2_grpc as pbg

        key = new_tls_key()
        with channel(self.side.env, rev_files) as rev:
            made = pbg.CertificateServiceStub(rev).CreateRemoteKey(pb.CreateRemoteKeyRequest(
                person_id=person_id, evidence="soak: no token, ID card inspected",
                tls_csr_der=tls_csr(key, person_id)), timeout=60)
        if made.certificate.person_id != person_id or not made.tls_certificate_der or len(made.tls_chain_der) != 2:
            raise AssertionError(f"CreateRemoteKey answered OK for {person_id} with {made.certificate.person_id}, "
                                 f"TLS {len(made.tls_certificate_der)} bytes, {len(made.tls_chain_der)} chain cert(s)")
        self.side.acked.ack("remote_key_created", person_id, serial=made.certificate.serial)
        tls.mkdir(parents=True, exist_ok=True)
        files = ClientFiles(tls / "client.crt", tls / "client.key", tls / "ca.pem")
        files.key.write_bytes(key_pem(key))
        files.key.chmod(0o600)
        files.cert.write_bytes(certs_pem(made.tls_certificate_der, made.tls_chain_der[0]))
        files.ca.write_bytes(certs_pem(made.tls_chain_der[1]))
        return Party(person_id, phone, "", files, codes=1, remote=True)

    def _journey(self, first: Party, second: Party, k: int = 0) -> Journey:
        with self._lock:
            n = next(self._n)
        j = Journey(n, first, second, k)
        if j.bulk:
            j.stage = "bulk"
        return j

    def _next(self, j: Journey) -> Journey:
        """The pair's next envelope, or a fresh pair's when this one has used most of its code allowance."""
        j.stage = "done"
        if max(j.first.codes, j.second.codes) < CODE_BUDGET:
            return self._journey(j.first, j.second, j.k + 1)
        fresh = self._journey(*self._pair())  # a failure here (the kill) leaves j done: retried
        for old in (j.first, j.second):
            # their keys have done their part; hundreds would slow the token down (a remote key is the server's)
            if old.remote:
                continue
            try:
                self.side._user.delete_key(old.key_id)
            except Exception as e:  # not the server's durability
                self.side.acked.failed("token-cleanup", e)
        return fresh

    # -- load ----------------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, acked: AckLog) -> None:
        journey = self._journeys.get()
        stubs = _Stubs(self.side)  # fresh channels per run: the server was restarted since the last one
        try:
            def step() -> None:
                nonlocal journey
                stage = journey.stage
                try:
                    after = self._advance(journey, stubs, acked)
                except Exception:
                    journey.cut_off = journey.cut_off or stage
                    raise
                if journey.cut_off not in ("", "done"):  # the call cut off by the kill went through on its retry
                    acked.ack("envelope_retried", f"{journey.envelope_id or journey.title} {journey.cut_off}",
                              stage=journey.cut_off)
                    journey.cut_off = ""
                journey = after

            repeat(stop, acked, self.name, step)
        finally:
            stubs.close()
            self._journeys.put(journey)

    def _advance(self, j: Journey, stub: _Stubs, acked: AckLog) -> Journey:
        """One call (or one signer's turn) of ``j``; returns the journey to go on with."""
        from signet.v1 import server_pb2 as pb

        if j.stage == "done":
            return self._next(j)
        if j.stage == "create":
            content = self._contract(j.title)
            env = stub(j.first).CreateEnvelope(pb.CreateEnvelopeRequest(
                idempotency_key=f"create {j.title}", title=j.title, tags=["soak"],
                documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=content)],
                recipients=[pb.RecipientSpec(person_id=p.person_id, role=pb.RECIPIENT_ROLE_SIGNER, routing_order=o,
                                             signing_method=_method(p))
                            for o, p in ((1, j.first), (2, j.second))]), timeout=30).envelope
            [doc] = env.documents
            if env.title != j.title or env.state != pb.ENVELOPE_STATE_DRAFT or doc.current_sha256 != _sha(content):
                raise AssertionError(f"CreateEnvelope answered OK with {env.id} {env.title!r} in state {env.state}, "
                                     f"document {doc.current_sha256}")
            j.envelope_id, j.document_id, j.original = env.id, doc.id, doc.current_sha256
            j.recipients = {r.person_id: r.id for r in env.recipients}
            with self._lock:
                self._senders[env.id] = j.first
            acked.ack("envelope_created", env.id, title=j.title, sha256=j.original, document=doc.id)
            j.stage = "send"
            return j
        if j.stage in ("bulk", "opened"):
            return self._bulk(j, stub, acked)
        if j.stage == "send":
            env = stub(j.first).SendEnvelope(pb.SendEnvelopeRequest(
                idempotency_key=f"send {j.envelope_id}", envelope_id=j.envelope_id), timeout=30).envelope
            if env.state != pb.ENVELOPE_STATE_SENT or not env.HasField("sent_at"):
                raise AssertionError(f"SendEnvelope answered OK with {env.id} in state {env.state}")
            sent_at = env.sent_at.ToDatetime().replace(tzinfo=dt.UTC)
            acked.ack("envelope_sent", env.id, sent_at=sent_at.isoformat(), sha256=env.documents[0].original_sha256)
            j.stage = "first"
            return j
        return self._signer_turn(j, stub, acked)

    def _signer_turn(self, j: Journey, stub: _Stubs, acked: AckLog) -> Journey:
        """The current signer's turn: a decline, a remote signature, or a signature made on the token."""
        from signet.v1 import server_pb2 as pb

        signer = j.first if j.stage == "first" else j.second
        rid = j.recipients[signer.person_id]
        if j.stage == "second" and j.declines:
            reason = f"soak: {j.title} declined"
            env = stub(signer).DeclineEnvelope(pb.DeclineEnvelopeRequest(
                idempotency_key=f"decline {j.envelope_id}", envelope_id=j.envelope_id, reason=reason),
                timeout=30).envelope
            if env.state != pb.ENVELOPE_STATE_DECLINED:
                raise AssertionError(f"DeclineEnvelope answered OK with {env.id} in state {env.state}")
            acked.ack("envelope_declined", env.id, recipient=rid, reason=reason)
            return self._next(j)
        if signer.remote:
            return self._remotely(j, signer, rid, stub(signer), acked)
        if j.pending is None:
            j.pending = self._turn(j, signer, rid, stub(signer))
        pd = j.pending
        env = stub(signer).SubmitSignature(pb.SubmitSignatureRequest(
            idempotency_key=pd.key, envelope_id=j.envelope_id, document_id=j.document_id, one_time_code=pd.code,
            code_id=pd.code_id, content=pd.content), timeout=60).envelope
        sha = _sha(pd.content)
        if env.documents[0].current_sha256 != sha:
            raise AssertionError(f"SubmitSignature answered OK for {env.id}, but the current revision is "
                                 f"{env.documents[0].current_sha256}, not the {sha} submitted")
        acked.ack("envelope_signed", f"{env.id}/{rid}", envelope=env.id, document=j.document_id, recipient=rid,
                  sha256=sha, previous=pd.previous)
        j.pending = None
        if j.stage == "first":
            j.stage = "second"
            return j
        if env.state != pb.ENVELOPE_STATE_COMPLETED:
            raise AssertionError(f"both signed {env.id}, which is in state {env.state}, not completed")
        acked.ack("envelope_completed", env.id)
        return self._next(j)

    def _bulk(self, j: Journey, stub: _Stubs, acked: AckLog) -> Journey:
        """The pair's template (made once, then reused), then one BulkSendEnvelopes call: a row per title, each
        naming the pair, retried after a kill exactly as it was (same key, same rows): no row is sent twice; then
        the first row's envelope read (stage ``opened``) to go on with it."""
        from signet.v1 import server_pb2 as pb

        if j.stage == "opened":  # the first row's envelope, read to go on with it
            env = stub(j.first).GetEnvelope(pb.GetEnvelopeRequest(envelope_id=j.envelope_id), timeout=30).envelope
            [doc] = env.documents
            if env.state != pb.ENVELOPE_STATE_SENT:
                raise AssertionError(f"bulk-sent envelope {env.id} is in state {env.state}")
            j.document_id, j.original = doc.id, doc.original_sha256
            j.recipients = {r.person_id: r.id for r in env.recipients}
            j.stage = "first"
            return j
        pair = (j.first.person_id, j.second.person_id)
        with self._lock:
            template = self._templates.get(pair)
        if template is None:
            content = self._contract("Soak bulk template")
            env = stub(j.first).CreateEnvelope(pb.CreateEnvelopeRequest(
                idempotency_key=f"template {pair[0]} {pair[1]}", title=TEMPLATE_TITLE, tags=["soak"],
                documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=content)],
                recipients=[pb.RecipientSpec(person_id=blank, role=pb.RECIPIENT_ROLE_SIGNER, routing_order=o,
                                             signing_method=_method(p))
                            for o, (blank, p) in enumerate(zip(PLACEHOLDERS, (j.first, j.second), strict=True), 1)]),
                timeout=30).envelope
            [doc] = env.documents
            if env.title != TEMPLATE_TITLE or env.state != pb.ENVELOPE_STATE_DRAFT \
                    or doc.current_sha256 != _sha(content):
                raise AssertionError(f"CreateEnvelope (template) answered OK with {env.id} {env.title!r} in state "
                                     f"{env.state}, document {doc.current_sha256}")
            template = Template(env.id, doc.current_sha256)
            with self._lock:
                self._templates[pair] = template
                self._senders[env.id] = j.first
            acked.ack("envelope_template", env.id, sha256=template.sha256, first=pair[0], second=pair[1])
            return j  # the bulk send is the next step
        titles = j.bulk_titles
        got = stub(j.first).BulkSendEnvelopes(pb.BulkSendEnvelopesRequest(
            idempotency_key=f"bulk {j.n}", template_envelope_id=template.id,
            rows=[pb.BulkRow(values={"first": pair[0], "second": pair[1], "n": t.removeprefix(BULK_TITLE)})
                  for t in titles]), timeout=60).results
        ids = [r.envelope_id for r in got]
        if [r.row for r in got] != list(range(len(titles))) or any(r.HasField("error") for r in got) \
                or len(set(ids)) != len(titles) or not all(ids):
            raise AssertionError(f"BulkSendEnvelopes answered OK for {len(titles)} row(s) with {got}")
        with self._lock:
            self._senders.update(dict.fromkeys(ids, j.first))
        for i, (eid, title) in enumerate(zip(ids, titles, strict=True)):
            acked.ack("envelope_bulk_sent", eid, title=title, template=template.id, row=i, sha256=template.sha256,
                      recipients=list(pair))
        j.envelope_id = ids[0]
        j.stage = "opened"
        return j

    def _remotely(self, j: Journey, p: Party, rid: str, stub: Any, acked: AckLog) -> Journey:
        """A remote signer's turn: GetDocument, StartSigning (the code from the outbox), SignRemotely naming that
        revision; retried after a kill exactly as it was (same key, same code).  When the kill cut the call after
        its activation committed (the code spent, no revision: the store shows the ``activated`` event of that code
        and no signature with it), the retry is refused OTP_USED: then a fresh StartSigning and SignRemotely."""
        import grpc

        from signet.v1 import server_pb2 as pb
        from tests.e2e.server_harness import reason

        if j.pending is None:
            got = stub.GetDocument(pb.GetDocumentRequest(envelope_id=j.envelope_id, document_id=j.document_id),
                                   timeout=30)
            sha = _sha(bytes(got.content))
            challenge = stub.StartSigning(pb.StartSigningRequest(
                envelope_id=j.envelope_id, document_id=j.document_id, revision_sha256=sha), timeout=30).challenge
            p.codes += 1
            code = self.side.code(p.phone, 6)
            with self._lock:
                self._remote_codes[challenge.code_id] = code
            j.pending = Pending(f"sign-remote {j.envelope_id} {rid} {j.activation}", b"", code, challenge.code_id,
                                sha)
        pd = j.pending
        try:
            env = stub.SignRemotely(pb.SignRemotelyRequest(
                idempotency_key=pd.key, envelope_id=j.envelope_id, document_id=j.document_id,
                revision_sha256=pd.previous, code_id=pd.code_id, one_time_code=pd.code), timeout=60).envelope
        except grpc.RpcError as e:
            if j.cut_off and reason(e) == "OTP_USED" and pd.code_id in self._cut_codes:
                why = self._activation_cut(j.envelope_id, pd.code_id)
                if why:
                    raise AssertionError(f"SignRemotely retried after the kill ({pd.key}) refused OTP_USED: {why}") \
                        from None
                acked.ack("envelope_activation_cut", pd.code_id, envelope=j.envelope_id, recipient=rid)
                j.pending = None
                j.activation += 1
                return j
            with self._lock:
                self._cut_codes.add(pd.code_id)
            raise
        except Exception:
            with self._lock:
                self._cut_codes.add(pd.code_id)
            raise
        sha = env.documents[0].current_sha256
        if sha == pd.previous or env.documents[0].signatures != (2 if j.stage == "second" else 1):
            raise AssertionError(f"SignRemotely answered OK for {env.id}, but the current revision is {sha} with "
                                 f"{env.documents[0].signatures} signature(s), signed over {pd.previous}")
        acked.ack("envelope_signed_remotely", f"{env.id}/{rid}", envelope=env.id, document=j.document_id,
                  recipient=rid, sha256=sha, previous=pd.previous, code_id=pd.code_id)
        j.pending = None
        if j.stage == "first":
            j.stage = "second"
            return j
        if env.state != pb.ENVELOPE_STATE_COMPLETED:
            raise AssertionError(f"both signed {env.id}, which is in state {env.state}, not completed")
        acked.ack("envelope_completed", env.id)
        return self._next(j)

    def _activation_cut(self, envelope_id: str, code_id: str) -> str:
        """"" when the store shows exactly one activation with ``code_id`` and no signature made with it."""
        with read_only(self.side.store_path, self.side.sealer) as db:
            rows = [(r["type"], json.loads(r["detail"])) for r in db.execute(
                "SELECT type, detail FROM envelope_events WHERE envelope_id = ? AND type IN ('activated', 'signed') "
                "ORDER BY id", (envelope_id,))]
        acts = [d for t, d in rows if t == "activated" and d.get("code_id") == code_id]
        signed = [d for t, d in rows if t == "signed" and d.get("code_id") == code_id]
        return "" if len(acts) == 1 and not signed else \
            f"{len(acts)} activation(s) and {len(signed)} signature(s) with code {code_id} in the store"

    def _turn(self, j: Journey, p: Party, rid: str, stub: Any) -> Pending:
        """Fetch the current revision, have a code sent for it, read it, sign on the token."""
        from signet.v1 import server_pb2 as pb

        got = stub.GetDocument(pb.GetDocumentRequest(envelope_id=j.envelope_id, document_id=j.document_id),
                               timeout=30)
        current = bytes(got.content)
        challenge = stub.StartSigning(pb.StartSigningRequest(
            envelope_id=j.envelope_id, document_id=j.document_id, revision_sha256=_sha(current)),
            timeout=30).challenge
        p.codes += 1
        code = self.side.code(p.phone, 6)
        return Pending(f"sign {j.envelope_id} {rid}", self._sign(p, current, rid), code, challenge.code_id,
                       _sha(current))

    def _sign(self, p: Party, data: bytes, rid: str) -> bytes:
        from formats import PdfSignOptions, TokenSigner, sign_pdf

        if p.signer is None:
            p.signer = TokenSigner(self.side._user, p.key_id)
        work = self.side.directory / "envelope-work"
        work.mkdir(exist_ok=True)
        src, out = work / f"{rid}-in.pdf", work / f"{rid}-out.pdf"
        src.write_bytes(data)
        sign_pdf(src, out, p.signer, PdfSignOptions(field_name=f"signet-{rid}", reason="soak"))
        return out.read_bytes()

    @staticmethod
    def _contract(title: str) -> bytes:
        from formats.samplepdf import contract_pdf_bytes

        return contract_pdf_bytes(title, ["Soak Sender", "Soak Counterparty"], pages=1)

    # -- checks after the restart --------------------------------------------------------------------------------
    def check(self, state: ServerState) -> list[str]:
        snap = self._snapshot()
        with self._lock:
            cut, codes = set(self._cut_codes), dict(self._remote_codes)
        return (self._acknowledged(state.acked, snap) + [p for e in snap.envelopes for p in self._consistent(snap, e)]
                + _activations(snap, cut, codes)
                + self._duplicates(snap) + self._blobs(snap) + self._notice_duplicates(state)
                + self._audit_and_seals(snap) + self._through_api(state, snap))

    def _snapshot(self) -> Snapshot:
        documents: dict[str, list[dict[str, Any]]] = defaultdict(list)
        recipients: dict[str, list[dict[str, Any]]] = defaultdict(list)
        revisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with read_only(self.side.store_path, self.side.sealer) as db:
            # one read transaction: the tables as of one moment (WAL), not torn by a notice delivered meanwhile
            # (its delivery writes the recipient's notified_at and the 'notified' event together)
            db.execute("BEGIN")
            envelopes = {r["id"]: dict(r) for r in db.execute(
                "SELECT id, org_id, sender_person_id, title, state, sent_at, completed_at, ended_at FROM envelopes")}
            for r in db.execute("SELECT id, envelope_id, locked_sha256 FROM envelope_documents ORDER BY position"):
                documents[r["envelope_id"]].append(dict(r))
            for r in db.execute("SELECT id, envelope_id, person_id, role, routing_order, state, notified_at, "
                                "viewed_at, signed_at, declined_at, decline_reason, certificate_serial "
                                "FROM envelope_recipients ORDER BY envelope_id, position"):
                recipients[r["envelope_id"]].append(dict(r))
            for r in db.execute("SELECT document_id, seq, kind, sha256, size, recipient_id FROM envelope_revisions "
                                "ORDER BY document_id, seq"):
                revisions[r["document_id"]].append(dict(r))
            for r in db.execute("SELECT id, envelope_id, type, actor, at, detail FROM envelope_events ORDER BY id"):
                events[r["envelope_id"]].append({**dict(r), "detail": json.loads(r["detail"])})
            queued = None
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'envelope_notices'").fetchone():
                queued = {r[0] for r in db.execute("SELECT recipient_id FROM envelope_notices WHERE state <> "
                                                    "'delivered' AND recipient_id IS NOT NULL")}
            remote_keys = {r[0]: r[1] for r in db.execute("SELECT person_id, certificate_serial FROM remote_keys")}
        return Snapshot(envelopes, dict(documents), dict(recipients), dict(revisions), dict(events), queued,
                        remote_keys)

    @staticmethod
    def _acknowledged(acked: AckLog, snap: Snapshot) -> list[str]:
        problems = []
        for kind, judge in ACKNOWLEDGED.items():
            for a in acked.of(kind):
                what = judge(snap, a)
                if what:
                    problems.append(f"LOST {a.kind} (round {a.round}): {a.key}: {what}")
        return problems

    @staticmethod
    def _consistent(snap: Snapshot, envelope_id: str) -> list[str]:
        """One envelope: states, routing, revisions and events agree (whether or not anything was acknowledged)."""
        v = _View.of(snap, envelope_id)
        return [f"envelope {envelope_id} ({v.env['state']}): {what}"
                for what in _revision_states(v) + _routing(v) + _envelope_events(v) + _recipient_events(v)]

    @staticmethod
    def _duplicates(snap: Snapshot) -> list[str]:
        problems = []
        titles = Counter(e["title"] for e in snap.envelopes.values() if e["title"].startswith((TITLE, BULK_TITLE))
                         and e["title"] != TEMPLATE_TITLE)
        problems += [f"{n} envelopes titled {t!r}: one create or bulk row acted more than once"
                     for t, n in titles.items() if n > 1]
        rows = Counter((o["template_id"], e["title"]) for e in snap.envelopes.values()
                       if (o := _bulk_origin(snap, e["id"])) is not None)
        problems += [f"{n} envelopes from template {tid} titled {t!r}: a bulk row sent more than once"
                     for (tid, t), n in rows.items() if n > 1]
        templates = Counter(e.get("sender_person_id") for e in snap.envelopes.values()
                            if e["title"] == TEMPLATE_TITLE)
        problems += [f"{n} templates of sender {who}: one create acted more than once" for who, n in templates.items()
                     if n > 1]
        for doc, revs in snap.revisions.items():
            by = Counter(r["recipient_id"] for r in revs[1:])
            shas = Counter(r["sha256"] for r in revs)
            problems += [f"document {doc}: {n} revisions by recipient {rid}" for rid, n in by.items() if n > 1]
            problems += [f"document {doc}: revision {sha} stored {n} times" for sha, n in shas.items() if n > 1]
        return problems

    def _blobs(self, snap: Snapshot) -> list[str]:
        """Every revision's blob is there (all of them, every round) and hashes to its name (each blob once: they
        are write-once); each revision extends the one before it."""
        problems = []
        org_of = {d["id"]: snap.envelopes[e]["org_id"] for e, docs in snap.documents.items() for d in docs
                  if e in snap.envelopes}
        for doc, revs in snap.revisions.items():
            org = org_of.get(doc, "")
            for i, r in enumerate(revs):
                if r["sha256"] in self._verified:  # decrypted and checked in an earlier round: still there?
                    if not self.side.working_blob_exists(r["sha256"], org):
                        problems.append(f"document {doc} revision {r['seq']}: blob {r['sha256']} is gone")
                    continue
                try:  # encrypted in the server's archive: decrypted with its token, checked against its id
                    data = self.side.working_blob(r["sha256"], org)
                except Exception as e:
                    problems.append(f"document {doc} revision {r['seq']}: blob {r['sha256']} unreadable: "
                                    f"{type(e).__name__}: {e}")
                    continue
                if data is None:
                    problems.append(f"document {doc} revision {r['seq']}: blob {r['sha256']} is missing")
                    continue
                if _sha(data) != r["sha256"] or len(data) != r["size"]:
                    problems.append(f"document {doc} revision {r['seq']}: blob {r['sha256']} does not hash to its "
                                    f"name ({len(data)} bytes, {r['size']} recorded)")
                    continue
                if i and (len(data) <= revs[i - 1]["size"]
                          or _sha(data[:revs[i - 1]["size"]]) != revs[i - 1]["sha256"]):
                    problems.append(f"document {doc} revision {r['seq']} does not extend revision {r['seq'] - 1}")
                    continue
                self._verified[r["sha256"]] = len(data)
        return problems

    def _audit_and_seals(self, snap: Snapshot) -> list[str]:
        """The audit log verifies (every leaf, every signed head) and holds a leaf for every envelope event; every
        completed envelope is either sealed -- each archived object there, decrypting to its id -- or still
        queued with nothing recorded: never half-sealed."""
        from server.audit import AuditLog
        from server.store import open_store

        store = open_store(str(self.side.store_path))
        store.attach_field_sealer(self.side.sealer)
        try:
            log = AuditLog(store, migrate=False)
            report = log.verify(self.side.audit_certificate())
            problems = [f"audit log: {p}" for p in report.problems]
            leaves = {(r["subject"], json.loads(r["payload"]).get("event_id")) for r in store.query(
                "SELECT subject, payload FROM audit_leaves WHERE kind LIKE 'envelope.%'")}
            problems += [f"envelope {e} event {ev['id']} ({ev['type']}) has no audit leaf"
                         for e, evs in snap.events.items() for ev in evs if (e, ev["id"]) not in leaves]
            archive = self.side.archive()
            self.side.sealed_seen = len(store.query("SELECT envelope_id FROM seal_jobs WHERE state = 'sealed'"))
            for env_id, env in snap.envelopes.items():
                if env["state"] != "completed":
                    continue
                job = store.query_one("SELECT state FROM seal_jobs WHERE envelope_id = ?", (env_id,))
                objects = store.query("SELECT kind, org, sha256 FROM sealed_objects WHERE envelope_id = ?", (env_id,))
                sealed = job is not None and job["state"] == "sealed"
                if sealed != bool(objects) or (sealed and {o["kind"] for o in objects} < {"certificate", "events",
                                                                                           "document"}):
                    problems.append(f"envelope {env_id}: half-sealed (job {job and job['state']}, "
                                    f"{len(objects)} archived objects)")
                for o in objects:
                    if o["sha256"] in self._verified:
                        continue
                    try:
                        data = archive.get(o["org"], o["sha256"])
                    except Exception as e:
                        problems.append(f"envelope {env_id}: sealed {o['kind']} unreadable: {type(e).__name__}")
                        continue
                    if _sha(data) != o["sha256"]:
                        problems.append(f"envelope {env_id}: sealed {o['kind']} does not hash to its id")
                    else:
                        self._verified[o["sha256"]] = len(data)
            return problems
        finally:
            store.close()

    def _notice_duplicates(self, state: ServerState) -> list[str]:
        """At most one notice per envelope, address and topic (a notice sent again after a restart is a
        duplicate).  Outbox bodies are sealed: unsealed here with the server's data key, each message once."""
        import re

        from server.notify.outbox import OutboxChannel

        side = self.side
        with read_only(side.store_path, side.sealer) as db:
            rows = db.execute("SELECT id, topic, to_value, body_sealed FROM notify_outbox "
                              "WHERE topic LIKE 'envelope.%'").fetchall()
        for row in rows:
            if row["id"] in self._notices:
                continue
            body = side._box.decrypt(bytes(row["body_sealed"]), OutboxChannel._aad(row["id"])).decode()
            m = re.search(r"Envelope: (env_[0-9a-f]+)", body)
            self._notices[row["id"]] = (m.group(1) if m else "?", row["to_value"], row["topic"])
        counts = Counter(self._notices.values())
        problems = [f"notice {topic} about {env} to {to} sent {n} times" for (env, to, topic), n in counts.items()
                    if n > 1 and env != "?" and topic != "envelope.reminder"]
        earlier = [a for a in state.acked.of("envelope_sent") if a.round < state.round]
        if earlier and not any(env != "?" for env, _, _ in self._notices.values()):
            problems.append("no envelope notice names its envelope (did the notice text change?): the duplicate "
                            "check saw nothing")
        return problems

    def _through_api(self, state: ServerState, snap: Snapshot) -> list[str]:
        """This round's envelopes as their sender sees them through the API agree with the store."""
        import grpc

        from signet.v1 import server_pb2 as pb

        problems = []
        ids = dict.fromkeys(a.data.get("envelope", a.key) for a in state.acked.of(round=state.round)
                            if a.kind.startswith("envelope_"))
        stubs = _Stubs(self.side)
        try:
            for env_id in ids:
                sender = self._senders.get(env_id)
                if sender is None or env_id not in snap.envelopes:
                    continue  # reported as lost above
                try:
                    env = stubs(sender).GetEnvelope(pb.GetEnvelopeRequest(envelope_id=env_id), timeout=30).envelope
                    [doc] = env.documents
                    got = stubs(sender).GetDocument(pb.GetDocumentRequest(envelope_id=env_id, document_id=doc.id),
                                                    timeout=30)
                except grpc.RpcError as e:
                    problems.append(f"API: envelope {env_id}: {describe(e)}")
                    continue
                stored = snap.envelopes[env_id]["state"]
                shown = pb.EnvelopeState.Name(env.state).removeprefix("ENVELOPE_STATE_").lower()
                revs = snap.revisions.get(doc.id, [])
                if shown != stored or not revs or doc.current_sha256 != revs[-1]["sha256"] \
                        or _sha(bytes(got.content)) != doc.current_sha256:
                    problems.append(f"API: envelope {env_id} shown {shown} at {doc.current_sha256}, stored {stored} "
                                    f"at {revs[-1]['sha256'] if revs else None}")
        finally:
            stubs.close()
        return problems

