"""`make demo`, envelope stage: a contract between Alice, Bob and Carol, sent, signed on Alice's and Bob's tokens
and remotely by Carol, checked, timelined.

Steps (``scripts.demo.STEPS`` runs them after the server stage, while the server and Alice's and Bob's own agents
still run; every step drives only the ``signet`` CLI with ``--json``: Alice and Bob against their own agent, which
speaks to the server's mutual-TLS API with the TLS files ``signet enroll`` left in its state directory; Carol with
no agent at all, ``--identity demo-state/carol/identity``, the API files ``signet-admin remote-key create`` wrote):

1. Alice creates an envelope (``signet envelope create``): the sample contract, Alice signs first (routing order
   1), Bob second (order 2), Carol third (order 3, ``--remote-signer``: with the key the server holds for her).
2. She sends it (``signet envelope send``): the server locks the document's SHA-256 and records the send time to
   the millisecond; the demo prints it as the answer gives it.  Bob's ``signet inbox`` is still empty: his turn
   comes after Alice's.
3. Alice signs (``signet envelope sign --send-code``: a one-time code bound to the exact revision goes to her
   phone -- the demo reads it from the outbox with ``signet-admin``, as it reads every code --, then
   ``signet envelope sign --code-env``): her agent fetches the revision, its confirmation program is shown the
   file, SHA-256, pages and signer, the token signs, the new revision goes back to the server, which validates it.
4. Bob is notified (the e-mail in the outbox), finds the envelope in ``signet inbox``, reviews it with
   ``signet envelope show`` (documents with SHA-256 and pages, who signed so far) and signs with his token the
   same way.
5. Carol is notified (the e-mail in the outbox), finds the envelope in ``signet inbox --identity DIR``, reviews it
   with ``signet envelope show`` and signs remotely: ``signet envelope sign --remote --send-code`` (a code bound to
   the revision carrying Alice's and Bob's signatures, read from the outbox), then ``--remote --code-env``: her
   code activates the key on the server token for exactly that revision hash, once (the ``activated`` event), the
   server builds and validates the new revision; the envelope is completed.  No agent, no token.
6. ``signet envelope download`` writes the final PDF with the three signatures to ``demo-state/out/``; ``pdfsig``,
   with an NSS database that trusts only the Signet signing root, must call all three valid and trusted and the
   last one "Total document signed"; ``signet verify`` (Bob's agent, revocation online at the running server's
   OCSP responder) agrees, and formats' verifier (in-process, the same validation) reports which signature was
   made with a server-held key.
7. ``signet envelope events`` prints the envelope's timeline.

What the stage established goes to ``d.facts["envelope"]`` (structure in ``scripts/demo.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.demo_agent import (
    CLI_TIMEOUT,
    OUT,
    ROOT,
    STATE,
    DemoFailed,
    Step,
    rel,
    say,
    signet_json,
    tool,
    verify_account,
)
from scripts.demo_server import SERVER, SIGNER_PIN_ENV, S, Signer, admin_json, outbox_code
from scripts.processes import PY

if TYPE_CHECKING:
    from scripts.demo import Demo

SIGN_CODE_ENV = "SIGNET_DEMO_SIGNING_CODE"  # `signet envelope sign --code-env`: the code reaches the CLI only here
CONTRACT = STATE / "in" / "office-lease.pdf"
TITLE = "Office Lease Agreement"
NSSDB = SERVER / "nssdb"  # trusts the Signet signing root only


@dataclass
class EnvelopeStage:
    id: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    final: Path = OUT / CONTRACT.name
    started_at: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)


E = EnvelopeStage()


def _state(value: str) -> str:
    """ENVELOPE_STATE_SENT -> sent, RECIPIENT_STATE_NOTIFIED -> notified."""
    return value.rsplit("_STATE_", 1)[-1].lower()


def _stamp(value: str) -> str:
    """An API timestamp to the millisecond, the precision the server records (proto3 JSON prints 0, 3, 6 or 9
    fractional digits: a time on a whole second comes without any)."""
    if not value:
        return ""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def _when(stamp: str) -> str:
    """2030-01-02T03:04:05.678Z -> 03:04:05.678."""
    return _stamp(stamp)[11:23]


def _people(answer: dict[str, Any]) -> str:
    return "; ".join(f"{r['routing_order']}. {r['legal_name']} {_state(r['state'])}" for r in answer["recipients"])


def _show(answer: dict[str, Any]) -> None:
    """A short account of an envelope answer (``signet --json envelope show`` and the others)."""
    say(f"  envelope {answer['id']} {answer['title']!r} from {answer['sender_name']}: {_state(answer['state'])}")
    for doc in answer["documents"]:
        say(f"  document {doc['name']}: {doc['pages']} pages, {doc['size']} bytes, sha256 "
            f"{doc['current_sha256'][:16]}…, {doc['signatures']} signature(s)")
    say(f"  recipients: {_people(answer)}")


def signet_identity(s: Signer, *args: str, secrets: dict[str, str] | None = None) -> Any:
    """``signet --json ARGS --identity DIR`` for a person without an agent (Carol): the CLI talks to the server's
    API alone, with the files ``signet-admin remote-key create`` wrote; shown, exit code checked, JSON parsed.
    ``secrets`` (variable -> value) reach the CLI's environment only."""
    shown = ["signet", "--json", *args, "--identity", rel(s.identity)]
    say("$ " + shlex.join(shown))
    p = subprocess.run([PY, "-m", "agent.cli", "--json", *args, "--identity", str(s.identity)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, **(secrets or {})}, timeout=CLI_TIMEOUT,
                       check=False)
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DemoFailed(f"`{shlex.join(shown)}` exited with {p.returncode}: {why}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise DemoFailed(f"`{shlex.join(shown)}` did not print JSON ({e})") from None


def _cli(s: Signer, *args: str, secrets: dict[str, str] | None = None) -> Any:
    """``signet --json ARGS`` as ``s``: through their own agent, or (no token) with their API files alone."""
    if s.remote:
        return signet_identity(s, *args, secrets=secrets)
    return signet_json(s.running, *args, secrets=secrets)


def _who(actor: str) -> str:
    """An event's actor as a name: ``person:<id>`` -> the person's first name."""
    for s in S.people:
        if actor == f"person:{s.person_id}":
            return s.first
    return actor


def step_create(d: Demo) -> None:
    from formats.samplepdf import make_contract_pdf

    E.started_at = time.perf_counter()
    E.facts = d.facts.setdefault("envelope", {})
    alice, bob, carol = S.person("Alice"), S.person("Bob"), S.person("Carol")
    make_contract_pdf(CONTRACT, TITLE, ["Alice Wang", "Bob Li", "Carol Zhao"], pages=2)
    original = CONTRACT.read_bytes()
    say(f"sample contract {rel(CONTRACT)} ({len(original)} bytes, sha256 {hashlib.sha256(original).hexdigest()[:16]}…)")
    answer = signet_json(alice.running, "envelope", "create", "--title", TITLE, "--message",
                         "Bob, Carol: the lease as agreed on the phone; I sign first.", "--tag", "lease",
                         "--document", rel(CONTRACT), "--recipient", f"{alice.person_id}:signer:1",
                         "--recipient", f"{bob.person_id}:signer:2", "--recipient", f"{carol.person_id}:signer:3",
                         "--remote-signer", carol.person_id)
    _show(answer)
    [doc] = answer["documents"]
    E.id, E.document = answer["id"], doc
    E.facts.update(id=answer["id"], title=answer["title"], sender_name=answer["sender_name"],
                   created={"state": answer["state"], "created_at": _stamp(answer["created_at"])},
                   document={"id": doc["id"], "name": doc["name"], "pages": doc["pages"], "size": int(doc["size"]),
                             "sha256": doc["current_sha256"], "input": str(CONTRACT)},
                   recipients=[{"name": r["legal_name"], "person_id": r["person_id"], "recipient_id": r["id"],
                                "routing_order": r["routing_order"], "role": r["role"],
                                "signing_method": r["signing_method"]} for r in answer["recipients"]])
    if answer["state"] != "ENVELOPE_STATE_DRAFT" or doc["current_sha256"] != hashlib.sha256(original).hexdigest():
        raise DemoFailed("the new envelope is not a draft holding the contract as uploaded")


def step_send(d: Demo) -> None:
    alice, bob, carol = S.person("Alice"), S.person("Bob"), S.person("Carol")
    answer = signet_json(alice.running, "envelope", "send", E.id)
    sent_at = _stamp(answer.get("sent_at", ""))
    [doc] = answer["documents"]
    states = {r["legal_name"]: _state(r["state"]) for r in answer["recipients"]}
    E.facts["sent"] = {"state": answer["state"], "sent_at": sent_at, "expires_at": _stamp(answer.get("expires_at", "")),
                       "original_sha256": doc["original_sha256"],
                       "recipients": [{"name": r["legal_name"], "state": r["state"],
                                       "notified_at": _stamp(r.get("notified_at", ""))} for r in answer["recipients"]]}
    say(f"  SENT at {sent_at} (server clock, to the millisecond); expires {answer.get('expires_at', '?')[:10]}")
    say(f"  document locked: sha256 {doc['original_sha256']}")
    say(f"  recipients: {_people(answer)} -- Alice's group first")
    if answer["state"] != "ENVELOPE_STATE_SENT" or not sent_at or states != {
            alice.name: "notified", bob.name: "pending", carol.name: "pending"}:
        raise DemoFailed(f"after sending the envelope is {answer['state']} with recipients {states}")
    inbox = signet_json(bob.running, "inbox").get("envelopes", [])
    E.facts["bob_inbox_before"] = [e["id"] for e in inbox]
    say(f"  Bob's inbox: {len(inbox)} envelope(s) -- his turn comes after Alice has signed")


def _sign(s: Signer, n: int) -> dict[str, Any]:
    """``s``'s turn: a code bound to the current revision, read from the outbox, and the signature -- on their token
    through their agent (its confirmation program shown what is signed), or, for Carol, by the server with the key
    it holds for her (``--remote``, no agent)."""
    env = E.id
    how = ["--remote"] if s.remote else ["--token", s.token_label]
    shown_before = set() if s.remote else set(s.shown_dir.glob("shown-*.json"))
    sent = _cli(s, "envelope", "sign", env, "--send-code", *how)
    [doc] = sent["documents"]
    challenge = doc["code_sent"]
    say(f"  code for revision sha256 {challenge['revision_sha256'][:16]}… sent via {challenge['channel']} "
        f"(code id {challenge['code_id']}); {s.first} reads it on the phone (here: the outbox, signet-admin)")
    code = outbox_code(s, "signing code")  # registered as a secret: it reaches the CLI only in SIGN_CODE_ENV
    t0 = time.perf_counter()
    pin = [] if s.remote else ["--pin-env", SIGNER_PIN_ENV]
    done = _cli(s, "envelope", "sign", env, *how, *pin, "--code-env", SIGN_CODE_ENV,
                secrets={SIGN_CODE_ENV: code, **({} if s.remote else {SIGNER_PIN_ENV: s.pin})})
    took = time.perf_counter() - t0
    seen: dict[str, Any] | None = None
    if not s.remote:
        shown = [json.loads(p.read_text()) for p in sorted(set(s.shown_dir.glob("shown-*.json")) - shown_before)]
        if len(shown) != 1:
            raise DemoFailed(f"{s.first}'s confirmation program was asked {len(shown)} times, not once")
        [seen] = shown
        say(f"  {s.first}'s agent showed: {seen['file_name']}, {seen['pages']} pages, sha256 {seen['sha256'][:16]}…, "
            f"signer {seen['signer_subject']} -> confirmed")
        if seen["sha256"] != challenge["revision_sha256"]:
            raise DemoFailed(f"{s.first} was shown sha256 {seen['sha256']}, the code was for "
                             f"{challenge['revision_sha256']}")
    if done.get("documents") != [{"document": E.document["id"], "signed": True}]:
        raise DemoFailed(f"`signet envelope sign` answered {done}")
    if s.remote:
        say(f"  {s.first}'s code activated her key on the server token for exactly that revision; the server signed "
            f"it, built the new revision and accepted it after validation ({took:.1f} s)")
    else:
        say(f"  signed on {s.token_label!r} and accepted by the server after validation ({took:.1f} s)")
    after = _cli(s, "envelope", "show", env)
    _show(after)
    me = next(r for r in after["recipients"] if r["person_id"] == s.person_id)
    if me["state"] != "RECIPIENT_STATE_SIGNED" or after["documents"][0]["signatures"] != n:
        raise DemoFailed(f"after {s.first}'s signature the server shows {me['state']}, "
                         f"{after['documents'][0]['signatures']} signature(s)")
    return {"name": s.name, "method": "remote" if s.remote else "token", "code_sent": challenge,
            "shown": None if seen is None else {k: seen.get(k) for k in (
                "operation", "file_name", "sha256", "size", "pages", "signer_subject", "token", "key_id")},
            "answer": done, "after": {"state": after["state"], "recipient_state": me["state"],
                                      "signed_at": _stamp(me.get("signed_at", "")),
                                      "certificate_serial": me["certificate_serial"],
                                      "current_sha256": after["documents"][0]["current_sha256"],
                                      "signatures": after["documents"][0]["signatures"],
                                      "recipients": {r["legal_name"]: r["state"] for r in after["recipients"]}},
            "seconds": round(took, 2)}


def step_alice_signs(d: Demo) -> None:
    E.facts["signatures"] = [_sign(S.person("Alice"), 1)]


def _reviews(s: Signer) -> dict[str, Any]:
    """``s``'s turn has come: the envelope e-mail in the outbox, ``signet inbox``, ``signet envelope show``."""
    notices: list[dict[str, Any]] = []
    for _ in range(10):  # notices are handed to the channel once the change has committed: moments, normally
        notices = [m for m in admin_json("outbox", "list", "--to", s.email) if m["topic"].startswith("envelope.")]
        if notices:
            break
        time.sleep(0.5)
    for m in notices:
        say(f"  outbox {m['id'][:8]}… to {m['to']}: {m['subject']!r} ({m['topic']})")
    inbox = _cli(s, "inbox").get("envelopes", [])
    listed = ", ".join(f"{e['id']} {e['title']!r} from {e['sender_name']}" for e in inbox)
    say(f"  {s.first}'s inbox: {listed or 'empty'}")
    if E.id not in [e["id"] for e in inbox]:
        raise DemoFailed(f"{s.first}'s inbox does not list {E.id}")
    shown = _cli(s, "envelope", "show", E.id)
    _show(shown)
    [doc] = shown["documents"]
    return {"notices": [{"subject": m["subject"], "topic": m["topic"]} for m in notices],
            "inbox": [e["id"] for e in inbox],
            "show": {"state": shown["state"], "sender_name": shown["sender_name"], "title": shown["title"],
                     "document": {"name": doc["name"], "pages": doc["pages"], "signatures": doc["signatures"],
                                  "original_sha256": doc["original_sha256"],
                                  "current_sha256": doc["current_sha256"]},
                     "recipients": {r["legal_name"]: r["state"] for r in shown["recipients"]}}}


def step_bob_reviews(d: Demo) -> None:
    seen = _reviews(S.person("Bob"))
    E.facts.update(notices_to_bob=seen["notices"], bob_inbox=seen["inbox"], bob_show=seen["show"])


def step_bob_signs(d: Demo) -> None:
    E.facts["signatures"].append(_sign(S.person("Bob"), 2))
    last = E.facts["signatures"][-1]["after"]
    if last["state"] != "ENVELOPE_STATE_SENT" or last["recipients"].get(S.person("Carol").name) != \
            "RECIPIENT_STATE_NOTIFIED":
        raise DemoFailed(f"after Bob's signature the envelope is {last['state']} with recipients "
                         f"{last['recipients']}, not sent with Carol notified")


def step_carol_reviews(d: Demo) -> None:
    carol = S.person("Carol")
    say(f"  Carol has no token and no agent: the `signet` CLI talks to the server's API alone, with the files in "
        f"{rel(carol.identity)}")
    seen = _reviews(carol)
    E.facts.update(notices_to_carol=seen["notices"], carol_inbox=seen["inbox"], carol_show=seen["show"])


def step_carol_signs(d: Demo) -> None:
    E.facts["signatures"].append(_sign(S.person("Carol"), 3))
    last = E.facts["signatures"][-1]["after"]
    if last["state"] != "ENVELOPE_STATE_COMPLETED":
        raise DemoFailed(f"after the three signatures the envelope is {last['state']}, not completed")


def _pdfsig_all(pdf: Path) -> dict[str, Any]:
    """pdfsig's verdict on every signature of ``pdf`` (it exits 0 even for a broken one: its text is read)."""
    p = tool("pdfsig", "-nssdir", f"sql:{rel(NSSDB)}", rel(pdf))
    sigs: list[dict[str, Any]] = []
    for line in p.stdout.splitlines():
        text = line.strip().removeprefix("- ")
        if line.startswith("Signature #"):
            sigs.append({"field": "", "signer": "", "signature_valid": False, "certificate_trusted": False,
                         "total_document_signed": False})
        elif sigs and text.startswith("Signature Field Name:"):
            sigs[-1]["field"] = text.split(":", 1)[1].strip()
        elif sigs and text.startswith("Signer Certificate Common Name:"):
            sigs[-1]["signer"] = text.split(":", 1)[1].strip()
        elif sigs and text == "Signature Validation: Signature is Valid.":
            sigs[-1]["signature_valid"] = True
        elif sigs and text == "Certificate Validation: Certificate is Trusted.":
            sigs[-1]["certificate_trusted"] = True
        elif sigs and text == "Total document signed":
            sigs[-1]["total_document_signed"] = True
    return {"exit_code": p.returncode, "signatures": sigs}


def step_download(d: Demo) -> None:
    from scripts.demo_ca import nss_trust

    alice, bob = S.person("Alice"), S.person("Bob")
    answer = signet_json(alice.running, "envelope", "download", E.id, "-o", rel(OUT))
    files = [Path(ROOT / f) for f in answer.get("files", [])]
    if [f.resolve() for f in files] != [E.final.resolve()]:
        raise DemoFailed(f"`signet envelope download` wrote {answer.get('files')}, not {rel(E.final)}")
    data, original = E.final.read_bytes(), CONTRACT.read_bytes()
    E.facts["download"] = {"path": str(E.final), "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                           "starts_with_original": data.startswith(original)}
    say(f"  {rel(E.final)}: {len(data)} bytes, sha256 {E.facts['download']['sha256'][:16]}…; the original "
        f"{len(original)} bytes are its untouched prefix: {'yes' if data.startswith(original) else 'NO'}")
    root = alice.tls_dir / "signing-root.pem"  # as `signet enroll` received it
    nss_trust(NSSDB, root, "signet-signing-root")
    say(f"NSS database {rel(NSSDB)} trusts the Signet signing root only (CT,C,C)")
    verdict = E.facts["pdfsig"] = _pdfsig_all(E.final)
    sigs = verdict["signatures"]
    for n, sig in enumerate(sigs, 1):
        say(f"  pdfsig #{n} {sig['signer']}: signature {'valid' if sig['signature_valid'] else 'NOT valid'}, "
            f"certificate {'trusted' if sig['certificate_trusted'] else 'NOT trusted'}"
            + (", total document signed" if sig["total_document_signed"] else ""))
    if len(sigs) != 3 or not all(s["signature_valid"] and s["certificate_trusted"] for s in sigs) \
            or not sigs[-1]["total_document_signed"]:
        raise DemoFailed("pdfsig did not find three valid, trusted signatures with the last covering the whole file")
    say("pdfsig verdict: all three signatures valid, all three certificates trusted, the whole document signed")
    verify = signet_json(bob.running, "verify", rel(E.final), "--trust", rel(bob.tls_dir / "signing-root.pem"))
    verify_account(verify)
    E.facts["verify"] = verify
    if not verify.get("valid") or len(verify.get("signatures", [])) != 3 \
            or not all(s.get("valid") for s in verify["signatures"]):
        raise DemoFailed("`signet verify` did not report the three signatures valid")
    E.facts["verify_report"] = _verify_in_process(root)


def _verify_in_process(root: Path) -> dict[str, Any]:
    """formats' verifier, in-process (what `signet verify` runs in the agent), for what the CLI's answer leaves
    out: which signature was made with a key held on the server token (``remote_key``)."""
    from asn1crypto import pem

    from formats import verify_pdf

    rep = verify_pdf(E.final, [pem.unarmor(root.read_bytes())[2]], revocation="online")
    sigs = [{"field_name": s.field_name, "signer_subject": s.signer_subject, "ok": s.ok, "trusted": s.trusted,
             "coverage": s.coverage, "remote_key": s.remote_key} for s in rep.signatures]
    say(f"formats' verifier (in-process, revocation online): {'VALID' if rep.valid else 'NOT VALID'}")
    for s in sigs:
        who = next((p.name for p in S.people if p.name in s["signer_subject"]), s["signer_subject"])
        say(f"  {s['field_name']} {who}: "
            + ("remote_key: a key held on the Signet server token" if s["remote_key"] else "the signer's own key"))
    if not rep.valid or [s["remote_key"] for s in sigs] != [False, False, True]:
        raise DemoFailed(f"formats' verifier: valid={rep.valid}, remote keys {[s['remote_key'] for s in sigs]}")
    return {"valid": rep.valid, "signatures": sigs}


def _event_text(e: dict[str, Any], detail: dict[str, Any]) -> str:
    rid = detail.get("recipient_id")
    whom = next((r["name"].split()[0] for r in E.facts["recipients"] if r["recipient_id"] == rid), "")
    sha = str(detail.get("sha256") or detail.get("revision_sha256") or "")[:16]
    texts = {
        "created": lambda: f"{detail.get('title', '')!r}",
        "sent": lambda: f"document sha256 {next(iter(detail.get('documents', {}).values()), '')[:16]}… locked",
        "notified": lambda: f"{whom} notified by {detail.get('channel', '?')}",
        "viewed": lambda: f"{whom} fetched the document",
        "code_sent": lambda: f"code for {whom}, bound to revision {sha}…",
        "activated": lambda: (f"{whom}'s key on the server token activated for revision {sha}… (certificate "
                              f"{detail.get('certificate_serial', '')}), once"),
        "signed": lambda: (f"{whom}'s revision {detail.get('seq')} accepted"
                           + (" (signed by the server, remote key)" if detail.get("method") == "remote" else "")
                           + f", sha256 {sha}…, certificate {detail.get('certificate_serial', '')}"),
        "completed": lambda: "every party has signed",
    }
    text = texts.get(e["type"])
    return text() if text else ", ".join(f"{k}={v}" for k, v in sorted(detail.items()) if k != "code_id")


def step_events(d: Demo) -> None:
    answer = signet_json(S.person("Alice").running, "envelope", "events", E.id)
    events = answer.get("events", [])
    done = next((i for i, e in enumerate(events) if e["type"] == "completed"), len(events) - 1)
    events = events[:done + 1]  # what follows (the platform seal) is the archive stage's story
    E.facts["events"] = []
    for e in events:
        detail = json.loads(e.get("detail_json") or "{}")
        E.facts["events"].append({"id": int(e["id"]), "type": e["type"], "actor": e["actor"],
                                  "at": _stamp(e["at"]), "detail": detail})
        say(f"  {_when(e['at'])}  {e['type']:<10} {_who(e['actor']):<7} {_event_text(e, detail)}")
    kinds = [e["type"] for e in events]
    if not kinds or kinds[0] != "created" or kinds[-1] != "completed" or kinds.count("signed") != 3 \
            or kinds.count("activated") != 1:
        raise DemoFailed(f"the timeline does not read created ... signed, signed, activated, signed ... completed: "
                         f"{kinds}")
    E.facts["duration_seconds"] = round(time.perf_counter() - E.started_at, 2)
    say(f"envelope stage: {E.facts['duration_seconds']:.1f} s")


ENVELOPE_STEPS: list[tuple[str, Step]] = [
    ("Alice creates an envelope: the contract, Alice signs first, Bob second, Carol (remotely) third", step_create),
    ("Alice sends it: the server records the send time", step_send),
    ("Alice signs with her token (one-time code bound to the revision)", step_alice_signs),
    ("Bob is notified, finds it in his inbox and reviews it", step_bob_reviews),
    ("Bob signs with his token through his agent", step_bob_signs),
    ("Carol is notified, finds it in her inbox and reviews it (no agent)", step_carol_reviews),
    ("Carol signs remotely with her code (no token): the envelope is completed", step_carol_signs),
    ("Final PDF downloaded and the three signatures verified (pdfsig, signet verify)", step_download),
    ("The envelope's event timeline", step_events),
]
