"""The demo's archive stage: the completed contract sealed by the platform (PAdES B-LTA), archived encrypted, and
exported as an evidence bundle; the audit log checked.

Runs after the envelope stage, on the server still running.  What it establishes goes to
``d.facts["archive"]``: ``sealed`` (the seal's events and archived objects), ``lta`` (pyHanko's AdES LTA verdict
per signature of the sealed contract and of the certificate of completion), ``pdfsig`` (per signature),
``plaintext_at_rest`` (where the contract's title, a party's name or a phrase of its text was found on the
server's disk: nowhere) and ``plaintext_markers`` (what was looked for),
``search`` (query -> found), ``evidence`` (the bundle's path, size, SHA-256 and signet verify-evidence's checks)
and ``audit`` (signet-admin audit verify).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.demo_agent import OUT, DemoFailed, Step, rel, say, signet_json, tool
from scripts.demo_envelopes import NSSDB, TITLE, E
from scripts.demo_server import S, admin_json

if TYPE_CHECKING:
    from scripts.demo import Demo

PHRASE = b"has read and understood the agreement"  # in every page of the demo contract's text
SEALED = OUT / "sealed"


@dataclass
class ArchiveStage:
    facts: dict[str, Any] = field(default_factory=dict)


A = ArchiveStage()


def step_sealed(d: Demo) -> None:
    A.facts = d.facts.setdefault("archive", {})
    alice = S.person("Alice")
    deadline = time.monotonic() + 180
    while True:
        events = signet_json(alice.running, "envelope", "events", E.id).get("events", [])
        types = [e["type"] for e in events]
        if "sealed" in types or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if "sealed" not in types:
        status = admin_json("contract", "status", E.id)
        raise DemoFailed(f"the server did not seal the contract within 180 s: {status.get('seal')}")
    say(f"  events after completion: {', '.join(types[types.index('completed'):])}")
    status = admin_json("contract", "status", E.id)
    for o in status["objects"]:
        say(f"  archived {o['kind']:<11} {o['size']:>7} bytes, object {o['sha256'][:16]}… (AES-256-GCM, its data "
            "key wrapped by the archive KEK on the server token)")
    exported = admin_json("contract", "export", E.id, "--out", str(SEALED))
    A.facts["sealed"] = {"events": types, "objects": status["objects"], "exported": exported["objects"]}
    say(f"  signet-admin contract export wrote {', '.join(f['file'] for f in exported['objects'])} to {rel(SEALED)}")


def step_check_sealed(d: Demo) -> None:
    from asn1crypto import pem

    from server.seal.evidence import lta_report  # the server's own report of an evidence bundle

    root_der = pem.unarmor((S.person("Alice").tls_dir / "signing-root.pem").read_bytes())[2]
    sealed = SEALED / E.final.name
    verdicts = {}
    for label, path in (("contract", sealed), ("certificate", SEALED / "certificate-of-completion.pdf")):
        sigs = asyncio.run(lta_report(path.read_bytes(), root_der))
        verdicts[label] = sigs
        for s in sigs:
            say(f"  pyHanko AdES LTA, {label}: {s['field']} {s['signer']}: "
                + ("PASSED" if s["passed"] else f"NOT passed ({s['ades']})"))
    A.facts["lta"] = verdicts
    if len(verdicts["contract"]) != 4 or not all(s["passed"] for v in verdicts.values() for s in v):
        raise DemoFailed("pyHanko did not pass every signature of the sealed contract and certificate as B-LTA")
    say("pyHanko verdict: the three parties' signatures and the platform seal are all B-LTA under the signing root "
        "alone, revocation data from the document itself")
    p = tool("pdfsig", "-no-ocsp", "-nssdir", f"sql:{rel(NSSDB)}", rel(sealed))
    valid, trusted = p.stdout.count("Signature is Valid."), p.stdout.count("Certificate is Trusted.")
    A.facts["pdfsig"] = {"valid": valid, "trusted": trusted}
    say(f"  pdfsig: {valid} signatures valid, {trusted} certificates trusted (the document timestamp is a type "
        "poppler 22 cannot validate)")
    if valid < 4 or trusted < 4:
        raise DemoFailed("pdfsig did not find the parties' and the seal's signatures valid and trusted")
    markers = {"a phrase of its text": PHRASE, "its title": TITLE.encode(),
               **{f"{p.name.split()[0]}'s name": p.name.split()[-1].encode() for p in S.people}}
    found = [f"{what} in {rel(f)}" for f in sorted(S.running_env.state.rglob("*")) if f.is_file()
             for what, m in markers.items() if m in f.read_bytes()]
    A.facts["plaintext_at_rest"] = found
    A.facts["plaintext_markers"] = sorted(markers)
    say(f"  the contract's title, the parties' names or a phrase of its text in plaintext on the server's disk "
        f"(store, WAL, archive): {', '.join(found) if found else 'nowhere'}")
    if found:
        raise DemoFailed(f"the contract is stored in plaintext: {found}")


def step_search(d: Demo) -> None:
    bob = S.person("Bob")
    found = {}
    for words in (["understood"], ["Office", "Lease"], ["赵卡罗"]):  # a word of the text, the title, Carol's name
        answer = signet_json(bob.running, "contracts", "search", *words)
        ids = [c["envelopeId"] for c in answer.get("contracts", [])]
        found[" ".join(words)] = E.id in ids
        say(f"  {' '.join(words)!r}: {answer.get('total', 0)} contract(s)"
            + (f", the demo's contract among them (score {answer['contracts'][ids.index(E.id)]['score']:.2f})"
               if E.id in ids else ", NOT the demo's contract"))
    A.facts["search"] = found
    if not all(found.values()):
        raise DemoFailed(f"the sealed contract was not found by every query: {found}")
    say("the blind index stores keyed hashes of terms only: the words above are nowhere in the database")


def step_evidence(d: Demo) -> None:
    alice, bob = S.person("Alice"), S.person("Bob")
    bundle = OUT / "evidence.zip"
    got = signet_json(alice.running, "evidence", E.id, "-o", rel(bundle))
    A.facts["evidence"] = {"path": str(bundle), "bytes": got["bytes"], "sha256": got["sha256"]}
    say(f"  {rel(bundle)}: {got['bytes']} bytes (sealed contract, certificate, events, audit leaves with inclusion "
        "proofs to a signed tree head, certificates, OCSP/CRL, report; a manifest signed by the platform seal)")
    root = bob.tls_dir / "signing-root.pem"
    checked = signet_json(bob.running, "verify-evidence", rel(bundle), "--trust", rel(root))
    checks = checked.get("checks", [])
    for c in checks:
        say(f"  {'OK ' if c['ok'] else 'BAD'} {c['name']}: {str(c['detail'])[:110]}")
    A.facts["evidence"]["checks"] = {c["name"]: c["ok"] for c in checks}
    if not checks or not all(c["ok"] for c in checks):
        raise DemoFailed("signet verify-evidence did not pass every check of the bundle")
    say("signet verify-evidence: every check passed, offline, with nothing but the bundle and the signing root")
    report = admin_json("audit", "verify")
    A.facts["audit"] = {"ok": report.get("ok"), "leaves": report.get("leaves"), "heads": report.get("heads"),
                        "problems": report.get("problems")}
    say(f"  signet-admin audit verify: {'verified' if report.get('ok') else 'NOT verified'}, {report.get('leaves')} "
        f"leaves, {report.get('heads')} signed tree head(s), problems: {report.get('problems') or 'none'}")
    if not report.get("ok"):
        raise DemoFailed(f"the audit log does not verify: {report.get('problems')}")


def step_portal(d: Demo) -> None:
    """The portal: Carol's "your turn" notice carried a link; opened now, it shows the completed contract."""
    import re
    import ssl
    import urllib.request

    carol = S.person("Carol")
    link = ""
    for entry in admin_json("outbox", "list", "--to", carol.email):
        body = admin_json("outbox", "read", entry["id"])["body"]
        m = re.search(r"Open it in your browser: (https://\S+/r/[A-Za-z0-9_-]+)", body)
        if m and E.id in body:
            link = m.group(1)
    if not link:
        raise DemoFailed("Carol's notice carried no portal link")
    ctx = ssl.create_default_context(cafile=str(S.running_env.ca_pem))
    with urllib.request.urlopen(link, timeout=30, context=ctx) as resp:  # noqa: S310 - our own https portal
        page = resp.read().decode()
    completed = "completed" in page and E.id in page
    A.facts["portal"] = {"address": link.split("/r/")[0], "link": link, "status": resp.status,
                         "shows_completed": completed}
    (OUT / "portal-link.txt").write_text(link + "\n")  # what `make serve` prints
    say(f"  portal: {link.split('/r/')[0]} (HTTPS, the server's TLS certificate)")
    say(f"  Carol's link from her notice: {link}")
    say(f"  opened: HTTP {resp.status}, the envelope {'completed' if completed else 'NOT completed'}, its pages "
        "rendered as images; `make serve` keeps the server running to open it in a browser")
    if resp.status != 200 or not completed:
        raise DemoFailed("the portal did not show Carol the completed contract")


ARCHIVE_STEPS: list[tuple[str, Step]] = [
    ("The server seals the completed contract (PAdES B-LTA) and archives it encrypted", step_sealed),
    ("The sealed contract checked: pyHanko AdES LTA, pdfsig, no plaintext at rest", step_check_sealed),
    ("Found again by keyword: a word of its text, its title, a party's Chinese name", step_search),
    ("An evidence bundle for a dispute, verified offline; the audit log verified", step_evidence),
    ("The portal: the link in Carol's notice opens the contract in a browser", step_portal),
]

__all__ = ["ARCHIVE_STEPS", "Path"]
