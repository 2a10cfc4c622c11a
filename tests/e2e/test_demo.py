"""`make demo` end to end (`python -m scripts.demo`), in a temporary demo state so ``demo-state/`` is left alone.

The demo runs once for the module, for real -- SoftHSM tokens, demo CA, in-process PAdES, the agent driven by the
``signet`` CLI, the server, Alice and Bob enrolled through their own agents, Carol given a remote-signing key on the
server token, an envelope Alice and Bob sign on their tokens and Carol remotely -- with ``SIGNET_DEMO_FACTS`` and
``SIGNET_DEMO_SECRETS`` in the test's directory.  The tests assert on the facts it reports (the structure is in
``scripts/demo.py``'s docstring), check its outputs again with independent tools (pdfsig, openssl), and prove that
none of the PINs and one-time codes it used appears in its output, its facts or the processes' logs.  Nothing here
depends on how the demo words or lays out its account for humans.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PEOPLE = {"Alice Wang 王爱丽": "alice-token", "Bob Li 李博": "bob-token"}  # their own tokens
ALICE, BOB = PEOPLE
CAROL = "Carol Zhao 赵卡罗"  # no token: a remote-signing key on the server token
TOKEN_POLICY, REMOTE_POLICY, REMOTE_MARKER = ("1.3.6.1.4.1.59541.1.1", "1.3.6.1.4.1.59541.1.2",
                                              "1.3.6.1.4.1.59541.0.3")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class DemoRun:
    state: Path
    returncode: int
    stdout: str
    stderr: str
    facts: dict[str, Any]
    facts_text: str
    secrets: list[dict[str, str]]
    repo_state_before: list[tuple[str, int]]


def _snapshot(directory: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.lstat().st_mtime_ns) for p in directory.rglob("*")) if directory.exists() else []


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    base = tmp_path_factory.mktemp("demo")
    state, facts, secrets = base / "demo-state", base / "facts.json", base / "secrets.json"
    env = {k: v for k, v in os.environ.items() if k not in ("SIGNET_PIN", "SIGNET_AGENT_SOCKET")}
    env.update(SIGNET_DEMO_STATE=str(state), SIGNET_DEMO_FACTS=str(facts), SIGNET_DEMO_SECRETS=str(secrets))
    before = _snapshot(ROOT / "demo-state")
    p = subprocess.run([PY, "-m", "scripts.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    facts_text = facts.read_text() if facts.exists() else ""
    return DemoRun(state, p.returncode, p.stdout, p.stderr, json.loads(facts_text) if facts_text else {}, facts_text,
                   json.loads(secrets.read_text()) if secrets.exists() else [], before)


def _ok(demo: DemoRun) -> None:
    assert demo.returncode == 0, f"demo failed (exit {demo.returncode}):\n{demo.stdout[-4000:]}\n{demo.stderr[-4000:]}"


def test_demo_completes_and_reports_every_step(demo: DemoRun) -> None:
    _ok(demo)
    assert "DEMO FAILED" not in demo.stdout + demo.stderr
    f = demo.facts
    assert f["format"] == "signet-demo-facts/1"
    assert f["ok"] is True and f["failure"] is None
    assert Path(f["state_dir"]) == demo.state
    assert f["steps"] and all(s["ok"] for s in f["steps"]), [s for s in f["steps"] if not s["ok"]]
    assert [s["n"] for s in f["steps"]] == list(range(1, len(f["steps"]) + 1))
    assert f["duration_seconds"] > 0
    assert {"token", "agent", "server", "envelope"} <= f.keys()


def test_nothing_written_to_the_repository_demo_state(demo: DemoRun) -> None:
    _ok(demo)
    assert _snapshot(ROOT / "demo-state") == demo.repo_state_before


def _pdfsig(nssdb: Path, pdf: Path) -> dict[str, bool]:
    p = subprocess.run(["pdfsig", "-nssdir", f"sql:{nssdb}", str(pdf)], capture_output=True, text=True, timeout=60)
    return {"signature_valid": "Signature is Valid." in p.stdout,
            "total_document_signed": "Total document signed" in p.stdout,
            "certificate_trusted": "Certificate is Trusted." in p.stdout}


ALL_TRUE = {"signature_valid": True, "total_document_signed": True, "certificate_trusted": True}


def test_stage_1_token_key_certificate_and_signed_contract(demo: DemoRun) -> None:
    _ok(demo)
    t = demo.facts["token"]
    assert t["label"] == "signet-demo" and t["serial"] and re.fullmatch(r"[0-9a-f]+", t["key_id"])
    assert t["certificate"]["on_token"] is True
    assert "CN=Zhang San" in t["certificate"]["subject"]
    assert t["pdfsig"] == ALL_TRUE
    assert t["verify"]["valid"] is True
    [sig] = t["verify"]["signatures"]
    assert sig["intact"] and sig["valid"] and sig["trusted"] and sig["coverage"] == "ENTIRE_FILE"
    # the signed contract is where the facts say, unchanged, and pdfsig agrees on its own
    pdf = Path(t["signed_pdf"]["path"])
    assert pdf == demo.state / "out" / "contract-signed.pdf"
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == t["signed_pdf"]["sha256"]
    assert _pdfsig(demo.state / "nssdb", pdf) == ALL_TRUE


def test_agent_stage_signs_and_verifies_through_the_cli(demo: DemoRun) -> None:
    _ok(demo)
    a = demo.facts["agent"]
    key_id = demo.facts["token"]["key_id"]
    assert a["health"] == "SERVING" and a["socket_mode"] == "0600"
    assert "signet-demo" in a["tokens"] and key_id in a["keys"]
    assert a["unlock"]["signatures_left"] == 4 and "grant" not in a["unlock"]
    for what, fmt in (("contract", "pades"), ("annex", "cades-detached")):
        signed, verdict = a["sign"][what], a["verify"][what]
        assert signed["format"] == fmt and signed["key_id"] == key_id
        out = Path(signed["output"])
        assert hashlib.sha256(out.read_bytes()).hexdigest() == signed["output_sha256"]
        assert out.stat().st_size == int(signed["output_size"])
        assert verdict["valid"] is True and not verdict["problems"], verdict
        [sig] = verdict["signatures"]
        assert sig["valid"] and sig["intact"] and sig["trusted"] and not sig["problems"]
        assert "Zhang San" in sig["signer_subject"]
    assert a["verify"]["contract"]["signatures"][0]["coverage"] == "ENTIRE_FILE"
    assert a["verify"]["contract"]["signatures"][0]["modification_level"] == "NONE"
    assert a["verify"]["contract"]["document_sha256"] == a["sign"]["contract"]["output_sha256"]
    assert a["pdfsig"] == ALL_TRUE
    assert a["openssl_cms_verify"] == {"ok": True, "exit_code": 0}
    assert a["lock"]["logged_out"] is True
    assert a["exit_code"] == 0 and a["socket_removed"] is True and a["pin_in_log"] is False
    assert [(e["operation"], e["outcome"]) for e in a["journal"]] == [
        ("unlock", "ok"), ("sign_pdf", "ok"), ("sign_detached", "ok"), ("verify_pdf", "valid"),
        ("verify_detached", "valid"), ("lock", "ok")]
    assert not Path(a["socket"]).exists()


def test_agent_outputs_verify_independently(demo: DemoRun) -> None:
    _ok(demo)
    out, ca = demo.state / "out", demo.state / "ca" / "root.pem"
    assert _pdfsig(demo.state / "nssdb", out / "contract-signed-agent.pdf") == ALL_TRUE
    p = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(out / "annex.txt.p7s"),
                        "-content", str(demo.state / "in" / "annex.txt"), "-CAfile", str(ca), "-out", os.devnull],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # a changed annex no longer verifies: the check above is not vacuous
    tampered = demo.state / "annex-tampered.txt"
    tampered.write_bytes((demo.state / "in" / "annex.txt").read_bytes().replace(b"12,000", b"1,200"))
    p = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(out / "annex.txt.p7s"),
                        "-content", str(tampered), "-CAfile", str(ca), "-out", os.devnull],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0


def test_server_stage_enrols_alice_and_bob(demo: DemoRun) -> None:
    _ok(demo)
    s = demo.facts["server"]
    people = {p["name"]: p for p in s["people"]}
    assert set(people) == {*PEOPLE, CAROL}
    assert s["organisation"]["name"] == "Signet Leasing Ltd."
    assert {o["login"] for o in s["operators"]} == {"demo-operator", "demo-reviewer"}
    for p in people.values():  # all three verified and approved alike, by the second operator (four eyes)
        assert p["person_id"]
        assert p["registered_status"] == "PERSON_STATUS_PENDING" and p["phone_verified"] is True
        assert p["approval"]["kind"] == "approved" and p["approval"]["actor"] == "operator:demo-reviewer"
    assert people[CAROL]["token_label"] is None and "key_id" not in people[CAROL] and "agent" not in people[CAROL]
    for name, token in PEOPLE.items():
        p = people[name]
        assert p["token_label"] == token
        assert re.fullmatch(r"[0-9a-f]+", p["key_id"]) and p["key_label"] == "contract-signing"
        assert p["subject"]["common_name"] == name
        assert p["subject"]["serial_number"].startswith("IDCCN-")
        assert p["subject"]["organization_name"] == "Signet Leasing Ltd." and p["subject"]["country_name"] == "CN"
        assert name in p["certificate_subject"]
        assert p["ocsp"]["status"] == "good" and p["ocsp"]["response_verified"] is True
        # the record `signet enroll` wrote agrees: in the state directory of the person's own agent, where
        # `signet envelope` finds it
        home = demo.state / name.split()[0].lower()
        record = json.loads((home / "agent" / "state" / "server" / "enrollment.json").read_text())
        assert (record["person_id"], record["key_id"], record["serial"]) == (
            p["person_id"], p["key_id"], p["certificate_serial"])
        assert record["api"] == f"127.0.0.1:{s['ports']['api']}"
        agent = p["agent"]
        assert Path(agent["socket"]) == home / "agent" / "run" / "agent.sock"
        assert agent["health"] == "SERVING" and agent["tokens"] == [token]  # their own token, nobody else's
        assert agent["exit_code"] == 0 and agent["socket_removed"] is True and agent["pin_in_log"] is False
        enrolled_and_signed = {("generate_key", "ok"): 1, ("create_csr", "ok"): 1, ("import_certificate", "ok"): 1,
                               ("sign_pdf", "ok"): 1}
        if name == BOB:  # Bob also verified the final PDF through his agent
            enrolled_and_signed[("verify_pdf", "valid")] = 1
        assert Counter((e["operation"], e["outcome"]) for e in agent["journal"]) == Counter(enrolled_and_signed)
    assert people[ALICE]["key_id"] != people[BOB]["key_id"]
    assert s["exit_code"] == 0
    assert s["duration_seconds"] > 0


def test_server_stage_gives_carol_a_remote_key_on_the_server_token(demo: DemoRun) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    _ok(demo)
    people = {p["name"]: p for p in demo.facts["server"]["people"]}
    carol = people[CAROL]
    rk = carol["remote_key"]
    assert rk["operator"] == "demo-reviewer"  # four eyes: not demo-operator, who registered her
    assert rk["subject"] == {"common_name": CAROL, "serial_number": rk["subject"]["serial_number"],
                             "organization_name": "Signet Leasing Ltd.", "country_name": "CN"}
    assert rk["subject"]["serial_number"].startswith("IDCCN-") and CAROL in rk["certificate_subject"]
    assert rk["issuer"] == people[ALICE]["issuer"]  # the signing CA, like a token certificate
    assert rk["policies"] == [REMOTE_POLICY, REMOTE_MARKER] and rk["server_held_marker"] is True
    # the key is on the server token, as pkcs11-tool (logged in there) sees it: sensitive, never extractable
    key = rk["on_server_token"]
    assert key["token"] == "signet-server" and key["label"].startswith(f"signet-remote-{carol['person_id']}")
    assert key["sensitive"] and key["always_sensitive"] and key["never_extractable"] and not key["extractable"]
    assert key["object"].startswith("Private Key Object; EC")
    assert rk["ocsp"]["status"] == "good" and rk["ocsp"]["response_verified"] is True
    # the API files she was handed, under demo-state/carol/: her identity, no token, no agent
    identity = demo.state / "carol" / "identity"
    assert Path(rk["identity_dir"]) == identity
    assert rk["files"]["client.key"] == "0600" and rk["files"]["csc.json"] == "0600"
    assert {"client.crt", "ca.pem", "identity.json"} <= rk["files"].keys()
    record = json.loads((identity / "identity.json").read_text())
    assert (record["person_id"], record["remote_key_serial"], record["api"]) == (
        carol["person_id"], rk["certificate_serial"], f"127.0.0.1:{demo.facts['server']['ports']['api']}")
    assert not (demo.state / "carol" / "softhsm").exists() and not (demo.state / "carol" / "agent").exists()
    # the certificate the demo wrote, checked with openssl against the root init wrote
    server = demo.state / "server"
    leaf = server / "pki" / "carol-remote.pem"
    p = subprocess.run(["openssl", "verify", "-CAfile", str(server / "state" / "signing-root.pem"), "-untrusted",
                        str(server / "pki" / "issuing.pem"), str(leaf)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    cert = x509.load_pem_x509_certificate(leaf.read_bytes())
    assert cert.serial_number == int(rk["certificate_serial"], 16)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CAROL
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [pi.policy_identifier.dotted_string for pi in policies] == [REMOTE_POLICY, REMOTE_MARKER]


def test_enrolled_certificates_chain_to_the_server_signing_root(demo: DemoRun) -> None:
    """The certificates the demo read from the tokens, checked with openssl against the root init wrote."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    _ok(demo)
    server = demo.state / "server"
    people = {p["name"]: p for p in demo.facts["server"]["people"]}
    for name, token in PEOPLE.items():
        leaf = server / "pki" / f"{token}.pem"
        p = subprocess.run(["openssl", "verify", "-CAfile", str(server / "state" / "signing-root.pem"), "-untrusted",
                            str(server / "pki" / "issuing.pem"), str(leaf)], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        cert = x509.load_pem_x509_certificate(leaf.read_bytes())
        assert cert.serial_number == int(people[name]["certificate_serial"], 16)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name


def _ms(stamp: str) -> str:
    """A time from the facts, checked to be RFC 3339 UTC to the millisecond (the precision the server records)."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    return stamp


def _t(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_envelope_is_created_and_sent_with_the_send_time_recorded(demo: DemoRun) -> None:
    _ok(demo)
    e = demo.facts["envelope"]
    people = {p["name"]: p for p in demo.facts["server"]["people"]}
    original = Path(e["document"]["input"]).read_bytes()
    assert e["created"]["state"] == "ENVELOPE_STATE_DRAFT" and e["sender_name"] == ALICE
    assert e["document"]["sha256"] == hashlib.sha256(original).hexdigest() and e["document"]["pages"] == 2
    assert [(r["name"], r["person_id"], r["routing_order"], r["role"], r["signing_method"])
            for r in e["recipients"]] == [
        (ALICE, people[ALICE]["person_id"], 1, "RECIPIENT_ROLE_SIGNER", "SIGNING_METHOD_TOKEN"),
        (BOB, people[BOB]["person_id"], 2, "RECIPIENT_ROLE_SIGNER", "SIGNING_METHOD_TOKEN"),
        (CAROL, people[CAROL]["person_id"], 3, "RECIPIENT_ROLE_SIGNER", "SIGNING_METHOD_REMOTE")]
    sent = e["sent"]
    assert sent["state"] == "ENVELOPE_STATE_SENT" and sent["original_sha256"] == e["document"]["sha256"]
    # the exact send time, as the server recorded it: in the answer, in the "sent" event, and the moment Alice's
    # group was notified; Bob's group waits
    events = {ev["type"]: ev for ev in reversed(e["events"])}  # the first of each type
    assert _ms(sent["sent_at"]) == events["sent"]["at"]
    assert _t(sent["sent_at"]) == _t(events["sent"]["detail"]["sent_at"])
    assert [(r["name"], r["state"]) for r in sent["recipients"]] == [
        (ALICE, "RECIPIENT_STATE_NOTIFIED"), (BOB, "RECIPIENT_STATE_PENDING"), (CAROL, "RECIPIENT_STATE_PENDING")]
    # Alice's notice went out with the send (or right after it, through the notice queue): its time is recorded
    assert _t(events["notified"]["detail"]["notified_at"]) >= _t(sent["sent_at"])
    assert events["notified"]["detail"]["recipient_id"] == e["recipients"][0]["recipient_id"]
    assert sent["sent_at"] in demo.stdout  # printed for the human, as recorded
    assert e["bob_inbox_before"] == []  # not his turn yet


def test_envelope_three_sign_in_order_with_codes_bound_to_the_revision(demo: DemoRun) -> None:
    _ok(demo)
    e = demo.facts["envelope"]
    people = {p["name"]: p for p in demo.facts["server"]["people"]}
    alice, bob, carol = e["signatures"]
    assert (alice["name"], bob["name"], carol["name"]) == (ALICE, BOB, CAROL)
    assert (alice["method"], bob["method"], carol["method"]) == ("token", "token", "remote")
    # each code was bound to the exact revision then signed: the original for Alice, the revision carrying
    # Alice's signature for Bob, the one carrying both for Carol
    assert alice["code_sent"]["revision_sha256"] == e["document"]["sha256"]
    assert bob["code_sent"]["revision_sha256"] == alice["after"]["current_sha256"] != e["document"]["sha256"]
    assert carol["code_sent"]["revision_sha256"] == bob["after"]["current_sha256"] != alice["after"]["current_sha256"]
    for sig in (alice, bob, carol):
        assert sig["code_sent"]["channel"] == "outbox" and sig["code_sent"]["code_id"].startswith("otp_")
        assert sig["answer"]["documents"] == [{"document": e["document"]["id"], "signed": True}]
        assert sig["after"]["recipient_state"] == "RECIPIENT_STATE_SIGNED"
    for sig in (alice, bob):  # on their own tokens: their agent's confirmation program was shown the revision
        assert sig["shown"]["sha256"] == sig["code_sent"]["revision_sha256"]
        assert sig["shown"]["operation"] == "sign_pdf" and sig["shown"]["pages"] == 2
        assert sig["shown"]["file_name"] == e["document"]["name"] and sig["name"] in sig["shown"]["signer_subject"]
        assert sig["shown"]["key_id"] == people[sig["name"]]["key_id"]
        assert sig["after"]["certificate_serial"] == people[sig["name"]]["certificate_serial"]
    # Carol: no agent, no token -- signed by the server with the key it holds for her
    assert carol["shown"] is None
    assert carol["after"]["certificate_serial"] == people[CAROL]["remote_key"]["certificate_serial"]
    assert alice["after"]["state"] == "ENVELOPE_STATE_SENT" and alice["after"]["signatures"] == 1
    assert alice["after"]["recipients"] == {ALICE: "RECIPIENT_STATE_SIGNED", BOB: "RECIPIENT_STATE_NOTIFIED",
                                            CAROL: "RECIPIENT_STATE_PENDING"}
    assert [n["topic"] for n in e["notices_to_bob"]] == ["envelope.sent"]
    assert e["bob_inbox"] == [e["id"]]
    shown = e["bob_show"]
    assert shown["sender_name"] == ALICE and shown["title"] == e["title"]
    assert shown["document"]["signatures"] == 1 and shown["document"]["pages"] == 2
    assert shown["document"]["original_sha256"] == e["document"]["sha256"]
    assert shown["document"]["current_sha256"] == alice["after"]["current_sha256"]
    assert bob["after"]["state"] == "ENVELOPE_STATE_SENT" and bob["after"]["signatures"] == 2
    assert bob["after"]["recipients"] == {ALICE: "RECIPIENT_STATE_SIGNED", BOB: "RECIPIENT_STATE_SIGNED",
                                          CAROL: "RECIPIENT_STATE_NOTIFIED"}
    # Carol is notified through the outbox, finds it in her inbox and reviews it, with her API files alone
    assert [n["topic"] for n in e["notices_to_carol"]] == ["envelope.sent"]
    assert e["carol_inbox"] == [e["id"]]
    shown = e["carol_show"]
    assert shown["sender_name"] == ALICE and shown["document"]["signatures"] == 2
    assert shown["document"]["current_sha256"] == bob["after"]["current_sha256"]
    assert shown["recipients"][CAROL] == "RECIPIENT_STATE_NOTIFIED"
    assert carol["after"]["state"] == "ENVELOPE_STATE_COMPLETED" and carol["after"]["signatures"] == 3
    assert carol["after"]["recipients"] == {ALICE: "RECIPIENT_STATE_SIGNED", BOB: "RECIPIENT_STATE_SIGNED",
                                            CAROL: "RECIPIENT_STATE_SIGNED"}


def test_envelope_final_pdf_has_three_signatures_and_pdfsig_trusts_them(demo: DemoRun) -> None:
    _ok(demo)
    e = demo.facts["envelope"]
    final = Path(e["download"]["path"])
    assert final == demo.state / "out" / e["document"]["name"]
    data = final.read_bytes()
    assert hashlib.sha256(data).hexdigest() == e["download"]["sha256"] == e["signatures"][-1]["after"][
        "current_sha256"]
    assert data.startswith(Path(e["document"]["input"]).read_bytes()) and e["download"]["starts_with_original"]
    fields = [f"signet-{r['recipient_id']}" for r in e["recipients"]]
    # the demo's own pdfsig run (revocation checked online at the running server's OCSP responder)
    assert [(s["field"], s["signer"], s["signature_valid"], s["certificate_trusted"])
            for s in e["pdfsig"]["signatures"]] == [(fields[0], ALICE, True, True), (fields[1], BOB, True, True),
                                                    (fields[2], CAROL, True, True)]
    assert [s["total_document_signed"] for s in e["pdfsig"]["signatures"]] == [False, False, True]
    # pdfsig again, here (the server is stopped now: no OCSP), with an NSS database trusting only the signing root
    from tests.pki import make_nssdb

    nss = make_nssdb(demo.state / "nss-test", (demo.state / "server" / "state" / "signing-root.pem").read_bytes())
    text = _pdfsig_text(nss, final)
    blocks = re.split(r"\nSignature #\d+:", text)[1:]
    assert len(blocks) == 3 and all("Signature is Valid." in b and "Certificate is Trusted." in b for b in blocks), text
    assert [n in b for n, b in zip((ALICE, BOB, CAROL), blocks, strict=True)] == [True, True, True]
    assert ["Total document signed" in b for b in blocks] == [False, False, True]
    assert all(f in text for f in fields)
    # ... and a changed byte in the signed range is noticed (the check above is not vacuous)
    tampered = demo.state / "tampered.pdf"
    at = data.index(b"Clause 1.")
    tampered.write_bytes(data[:at] + b"K" + data[at + 1:])
    assert _pdfsig_text(nss, tampered).count("Signature is Valid.") == 0
    verify = e["verify"]
    assert verify["valid"] is True
    assert [s["valid"] and s["trusted"] for s in verify["signatures"]] == [True, True, True]
    assert [s["field_name"] for s in verify["signatures"]] == fields
    assert [s["signing_policy"] for s in verify["signatures"]] == [TOKEN_POLICY, TOKEN_POLICY, REMOTE_POLICY]
    assert [s["remote_key"] for s in verify["signatures"]] == [False, False, True]  # `signet verify` says so too
    assert verify["document_sha256"] == e["download"]["sha256"]
    # formats' verifier reports Carol's signature as made with a key held on the server token
    report = e["verify_report"]
    assert report["valid"] is True and all(s["ok"] and s["trusted"] for s in report["signatures"])
    assert [(s["field_name"], s["remote_key"]) for s in report["signatures"]] == [
        (fields[0], False), (fields[1], False), (fields[2], True)]


def _pdfsig_text(nssdb: Path, pdf: Path) -> str:
    return subprocess.run(["pdfsig", "-no-ocsp", "-nssdir", f"sql:{nssdb}", str(pdf)], capture_output=True,
                          text=True, timeout=60).stdout


def test_envelope_timeline_tells_the_journey_in_order(demo: DemoRun) -> None:
    _ok(demo)
    e = demo.facts["envelope"]
    people = {p["name"]: p for p in demo.facts["server"]["people"]}
    alice, bob, carol = (f"person:{people[n]['person_id']}" for n in (ALICE, BOB, CAROL))
    rid = {r["name"]: r["recipient_id"] for r in e["recipients"]}
    steps = [(ev["type"], ev["actor"], ev["detail"].get("recipient_id")) for ev in e["events"]]
    assert steps == [
        ("created", alice, None), ("sent", alice, None), ("notified", "server", rid[ALICE]),
        ("viewed", alice, rid[ALICE]), ("code_sent", alice, rid[ALICE]), ("signed", alice, rid[ALICE]),
        ("notified", "server", rid[BOB]), ("viewed", bob, rid[BOB]), ("code_sent", bob, rid[BOB]),
        ("signed", bob, rid[BOB]), ("notified", "server", rid[CAROL]), ("viewed", carol, rid[CAROL]),
        ("code_sent", carol, rid[CAROL]), ("activated", carol, rid[CAROL]), ("signed", carol, rid[CAROL]),
        ("completed", "server", None)], steps
    ids = [ev["id"] for ev in e["events"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [_ms(ev["at"]) for ev in e["events"]] == sorted(ev["at"] for ev in e["events"])
    signed = [ev["detail"] for ev in e["events"] if ev["type"] == "signed"]
    assert [d["sha256"] for d in signed] == [s["after"]["current_sha256"] for s in e["signatures"]]
    assert [d["code_id"] for d in signed] == [s["code_sent"]["code_id"] for s in e["signatures"]]
    assert [d.get("method") for d in signed][-1] == "remote"
    # Carol's activation: her key for exactly the revision her code was bound to, once -- the code id, never the code
    [activated] = [ev["detail"] for ev in e["events"] if ev["type"] == "activated"]
    code = e["signatures"][2]["code_sent"]
    assert activated == {"recipient_id": rid[CAROL], "document_id": e["document"]["id"],
                         "revision_sha256": code["revision_sha256"], "code_id": code["code_id"],
                         "certificate_serial": people[CAROL]["remote_key"]["certificate_serial"]}
    for ev in e["events"]:  # every event is shown to the human, with its time to the millisecond
        assert f"{ev['at'][11:23]}  {ev['type']}" in demo.stdout


def test_humans_are_told_the_key_facts(demo: DemoRun) -> None:
    _ok(demo)
    for name, token in PEOPLE.items():
        assert name in demo.stdout and token in demo.stdout
    assert CAROL in demo.stdout
    assert "--json" in demo.stdout  # the commands are shown as run
    assert demo.facts["token"]["key_id"] in demo.stdout


def _occurs(secret: str, text: str) -> bool:
    """A short numeric secret counts only as a whole word (a 6-digit code may occur inside a hex serial)."""
    if len(secret) >= 10:
        return secret in text
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


def test_no_pin_or_code_in_the_output_the_facts_or_the_logs(demo: DemoRun) -> None:
    _ok(demo)
    kinds = Counter("code" if "code" in s["what"] else "client secret" if "client secret" in s["what"]
                    else "SO PIN" if "SO PIN" in s["what"] else "PIN" for s in demo.secrets)
    # the demo registered every secret it used: 4 PINs, 4 SO PINs (Carol has no token: neither), 3 phone codes,
    # 2 enrollment codes, 3 signing codes, and Carol's CSC client secret (csc.json of remote-key create)
    assert kinds == Counter({"PIN": 4, "SO PIN": 4, "code": 8, "client secret": 1}), demo.secrets
    logs = {str(p): p.read_text(errors="replace") for p in demo.state.rglob("*.log")}
    assert len(logs) >= 4, sorted(logs)  # three agents and the server
    places = {"stdout": demo.stdout, "stderr": demo.stderr, "facts": demo.facts_text, **logs}
    leaks = [f"{s['what']} in {where}" for s in demo.secrets for where, text in places.items()
             if _occurs(s["value"], text)]
    assert not leaks


def test_the_contract_is_sealed_archived_encrypted_and_exported_as_evidence(demo: DemoRun) -> None:
    _ok(demo)
    a = demo.facts["archive"]
    events = a["sealed"]["events"]
    assert events[events.index("completed"):] == ["completed", "sealed"]
    assert {o["kind"] for o in a["sealed"]["objects"]} == {"document", "certificate", "events"}
    # every signature B-LTA by pyHanko: three parties and the seal; the certificate of completion sealed too
    assert [s["passed"] for s in a["lta"]["contract"]] == [True] * 4
    assert a["lta"]["contract"][-1]["field"] == "signet-seal" and [s["field"] for s in a["lta"]["certificate"]] \
        == ["signet-seal"]
    assert a["pdfsig"]["valid"] >= 4 and a["pdfsig"]["trusted"] >= 4
    assert a["plaintext_at_rest"] == [] and len(a["plaintext_markers"]) == 5  # title, three names, a phrase
    bundle = Path(a["evidence"]["path"])
    assert bundle.is_file() and bundle.stat().st_size == a["evidence"]["bytes"]
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == a["evidence"]["sha256"]
    checks = a["evidence"]["checks"]
    assert {"manifest-signature", "files", "audit-head", "audit-leaves", "events"} <= set(checks)
    assert all(checks.values()) and any(k.startswith("pdf:") for k in checks)
    assert a["search"] and all(a["search"].values())
    assert a["audit"]["ok"] is True and a["audit"]["problems"] == [] and a["audit"]["leaves"] >= len(events)


def test_the_demo_prints_carols_portal_link_which_shows_the_completed_contract(demo: DemoRun) -> None:
    _ok(demo)
    portal = demo.facts["archive"]["portal"]
    assert portal["status"] == 200 and portal["shows_completed"] is True
    assert portal["link"].startswith(portal["address"] + "/r/") and portal["link"] in demo.stdout


def test_make_serve_runs_the_demo_server_and_agent_until_interrupted(demo: DemoRun) -> None:
    """Last in this module: it starts the demo's server and Alice's agent again on the demo's state."""
    import contextlib
    import queue
    import signal
    import ssl
    import threading
    import time
    import urllib.request

    _ok(demo)
    env = {**os.environ, "SIGNET_DEMO_STATE": str(demo.state)}
    p = subprocess.Popen([PY, "-m", "scripts.serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)  # its own group: see finally
    assert p.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in p.stdout or ():
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        out: list[str] = []
        deadline = time.monotonic() + 120
        while not out or out[-1].strip() != "serving":
            assert time.monotonic() < deadline and p.poll() is None, "".join(out)
            with contextlib.suppress(queue.Empty):
                out.append(lines.get(timeout=1))
        text = "".join(out)
        assert "signet-server ready" in text and "portal=https://" in text
        link = demo.facts["archive"]["portal"]["link"]
        assert link in text
        ctx = ssl.create_default_context(cafile=str(demo.state / "server" / "state" / "tls" / "ca.pem"))
        with urllib.request.urlopen(link, timeout=30, context=ctx) as resp:
            assert resp.status == 200 and "completed" in resp.read().decode()
        assert (demo.state / "alice" / "agent" / "ready").exists()  # Alice's agent is serving too
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 0
        time.sleep(0.2)  # the reader thread takes the last lines
        assert "stopped" in "".join(lines.get() for _ in range(lines.qsize()))
    finally:
        if p.poll() is None:  # the test failed midway: the server and the agent it started go with it
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
