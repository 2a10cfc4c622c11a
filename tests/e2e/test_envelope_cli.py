"""Envelopes from the command line, end to end: two people, each with their own agent (a real process) holding
their own SoftHSM token enrolled with `signet enroll`, and a real signet-server.  Alice creates a contract
envelope for herself and Bob, sends it, signs it (code bound to the revision, sent to her phone), Bob finds it
in his inbox and signs after her; the final PDF carries both signatures and pdfsig trusts both under the
signing root.  A code for a revision that has since changed is refused without a trace on the envelope.  Form
fields: each filled by its own recipient, another's refused.  A signature page the server appends: both
signatures land in their boxes on it.  Bulk send:
one envelope per CSV row from a template draft, a bad row reported alone, the same command again sends nothing
twice."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from formats.samplepdf import make_contract_pdf
from tests.pki import make_nssdb

from .agent_harness import AgentProcess, cli
from .server_harness import channel, latest_code, prc_id, register_verified, start_running

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PEOPLE = {"alice": ("Alice Wang 王爱丽", prc_id("19880808", "412"), "+8613900139101"),
          "bob": ("Bob Li 李博", prc_id("19790315", "215"), "+8613900139102")}


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory):
    base = tmp_path_factory.mktemp("envelope-cli")
    tok = make_token("srv-env")
    running = start_running(base / "server", tok.label, tok.pin)
    people = {}
    agents = []
    try:
        for who, (name, doc, phone) in PEOPLE.items():
            person = register_verified(running, channel(running.env, running.op_a), name, doc, phone,
                                       f"{who}@example.com")
            token = make_token(who)
            # the agent may use the server's TSA: PDF envelope signatures are PAdES B-T with it
            agent = AgentProcess(base / f"agent-{who}",
                                 agent_settings=f'timestamp_urls = ["{running.env.pki_url}/tsa"]').start()
            agents.append(agent)
            common = ["--token", token.label, "--server", running.env.enroll, "--server-ca",
                      str(running.env.ca_pem), "--person", person, "--api", running.env.api]
            sent = cli(agent, "enroll", *common, "--send-code")
            assert sent.returncode == 0, sent.stderr
            p = cli(agent, "enroll", *common, "--pin-env", "PIN", "--code-env", "CODE",
                    env={"PIN": token.pin, "CODE": latest_code(running.env, phone)})
            assert p.returncode == 0, p.stderr
            people[who] = {"id": person, "agent": agent, "token": token, "phone": phone}
        yield {"running": running, "people": people, "base": base}
    finally:
        for a in agents:
            a.stop()
        running.server.stop()


def _signet(world, who, *args, code=None):
    me = world["people"][who]
    env = {"PIN": me["token"].pin, **({"CODE": code} if code else {})}
    return cli(me["agent"], "--json", *args, env=env)


def _sign(world, who, envelope):
    me = world["people"][who]
    sent = _signet(world, who, "envelope", "sign", envelope, "--send-code", "--token", me["token"].label)
    assert sent.returncode == 0, sent.stderr
    [doc] = json.loads(sent.stdout)["documents"]
    assert doc["code_sent"]["revision_sha256"]
    code = latest_code(world["running"].env, me["phone"])
    p = _signet(world, who, "envelope", "sign", envelope, "--token", me["token"].label, "--pin-env", "PIN",
                "--code-env", "CODE", code=code)
    assert p.returncode == 0, p.stderr
    return code


def test_two_people_sign_a_contract_in_order_from_the_command_line(world):
    alice, bob = world["people"]["alice"], world["people"]["bob"]
    contract = world["base"] / "lease.pdf"
    make_contract_pdf(contract, "Office lease", ["Alice Wang", "Bob Li"], pages=3)
    p = _signet(world, "alice", "envelope", "create", "--title", "Office lease", "--document", str(contract),
                "--recipient", f"{alice['id']}:signer:1", "--recipient", f"{bob['id']}:signer:2:3,56,56,276,116")
    assert p.returncode == 0, p.stderr
    envelope = json.loads(p.stdout)["id"]
    p = _signet(world, "alice", "envelope", "send", envelope)
    assert p.returncode == 0, p.stderr
    sent = json.loads(p.stdout)
    assert sent["state"] == "ENVELOPE_STATE_SENT" and sent["sent_at"]

    # Bob's turn has not come: his inbox may list it, but signing out of order is refused
    early = _signet(world, "bob", "envelope", "sign", envelope, "--send-code", "--token", bob["token"].label)
    assert early.returncode != 0
    assert json.loads(early.stdout)["status"] == "FAILED_PRECONDITION"

    alice_code = _sign(world, "alice", envelope)
    inbox = json.loads(_signet(world, "bob", "inbox").stdout)
    assert envelope in [e["id"] for e in inbox.get("envelopes", [])]
    bob_code = _sign(world, "bob", envelope)

    shown = json.loads(_signet(world, "bob", "envelope", "show", envelope).stdout)
    assert shown["state"] == "ENVELOPE_STATE_COMPLETED"
    assert [r["state"] for r in shown["recipients"]] == ["RECIPIENT_STATE_SIGNED"] * 2
    assert shown["documents"][0]["signatures"] == 2

    out = world["base"] / "final"
    p = _signet(world, "alice", "envelope", "download", envelope, "-o", str(out))
    assert p.returncode == 0, p.stderr
    final = out / "lease.pdf"
    assert final.read_bytes().startswith(contract.read_bytes())  # incremental revisions over the original
    nss = make_nssdb(world["base"] / "nss", world["running"].env.signing_root.read_bytes())
    text = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(final)], capture_output=True,
                          text=True).stdout
    assert text.count("Signature is Valid.") == 2 and text.count("Certificate is Trusted.") == 2, text
    assert "Total document signed" in text
    # Bob's box was placed on page 3 (pages count from 1 in envelopes): his signature's widget is there
    from pyhanko.pdf_utils.reader import PdfFileReader

    with final.open("rb") as f:
        reader = PdfFileReader(f)
        pages = [reader.root["/Pages"]["/Kids"].raw_get(i).idnum for i in range(3)]
        widget = next(w for w in (a.get_object() for a in reader.root["/AcroForm"]["/Fields"])
                      if str(w["/T"]) == f"signet-{shown['recipients'][1]['id']}")
        assert widget.raw_get("/P").idnum == pages[2] and [float(v) for v in widget["/Rect"]] == [56, 56, 276, 116]
    # ... and the agents' own verifier agrees, online against the server's OCSP responder
    v = _signet(world, "bob", "verify", str(final), "--trust", str(world["running"].env.signing_root))
    assert v.returncode == 0, v.stdout + v.stderr

    events = [e["type"] for e in json.loads(_signet(world, "alice", "envelope", "events", envelope).stdout)["events"]]
    # the platform seal may already have followed the completion (a background pass): "sealed" after it
    events = [t for t in events if t != "sealed"]
    assert events[0] == "created" and "sent" in events and events.count("signed") == 2 and events[-1] == "completed"
    logs = alice["agent"].log() + bob["agent"].log() + world["running"].server.log
    assert alice_code not in logs and bob_code not in logs


def test_both_sign_in_their_boxes_on_the_signature_page_the_server_appends(world):
    alice, bob = world["people"]["alice"], world["people"]["bob"]
    contract = world["base"] / "supply.pdf"
    make_contract_pdf(contract, "Supply contract", ["Alice Wang", "Bob Li"], pages=2)
    p = _signet(world, "alice", "envelope", "create", "--title", "Supply contract", "--document", str(contract),
                "--recipient", f"{alice['id']}:signer:1", "--recipient", f"{bob['id']}:signer:2", "--signature-page")
    assert p.returncode == 0, p.stderr
    created = json.loads(p.stdout)
    envelope = created["id"]
    assert created["documents"][0]["pages"] == 3
    boxes = [r["field"] for r in created["recipients"]]
    assert [b["page"] for b in boxes] == [3, 3] and boxes[0] != boxes[1]
    assert _signet(world, "alice", "envelope", "send", envelope).returncode == 0
    _sign(world, "alice", envelope)
    _sign(world, "bob", envelope)

    out = world["base"] / "final-page"
    assert _signet(world, "alice", "envelope", "download", envelope, "-o", str(out)).returncode == 0
    final = out / "supply.pdf"
    assert final.read_bytes().startswith(contract.read_bytes())
    nss = make_nssdb(world["base"] / "nss-page", world["running"].env.signing_root.read_bytes())
    text = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(final)], capture_output=True,
                          text=True).stdout
    assert text.count("Signature is Valid.") == 2 and text.count("Certificate is Trusted.") == 2, text
    from pyhanko.pdf_utils.reader import PdfFileReader

    with final.open("rb") as f:
        reader = PdfFileReader(f)
        last = reader.root["/Pages"]["/Kids"].raw_get(2).idnum
        assert int(reader.root["/Pages"]["/Count"]) == 3
        for r, box in zip(created["recipients"], boxes, strict=True):
            widget = next(w for w in (a.get_object() for a in reader.root["/AcroForm"]["/Fields"])
                          if str(w["/T"]) == f"signet-{r['id']}")
            assert widget.raw_get("/P").idnum == last
            assert [float(v) for v in widget["/Rect"]] == [box.get(k, 0) for k in ("x1", "y1", "x2", "y2")]


def test_form_fields_filled_by_their_own_recipient(world):
    """Alice fills her text field and signs; Bob tries to fill Alice's (empty, optional) field: the server refuses
    the revision and nothing changes; he fills his own and signs with the same code; pdfsig trusts both."""
    from formats.formfields import form_field_values

    alice, bob = world["people"]["alice"], world["people"]["bob"]
    contract = world["base"] / "form.pdf"
    make_contract_pdf(contract, "Form lease", ["Alice Wang", "Bob Li"], pages=2)
    p = _signet(world, "alice", "envelope", "create", "--title", "Form lease", "--document", str(contract),
                "--recipient", f"{alice['id']}:signer:1", "--recipient", f"{bob['id']}:signer:2",
                "--form-field", f"{alice['id']}:alice_name:text:1,56,600,300,620:required",
                "--form-field", f"{alice['id']}:alice_note:text:1,56,560,300,580",
                "--form-field", f"{bob['id']}:bob_agree:checkbox:2,56,600,70,614:required",
                "--form-field", f"{bob['id']}:bob_date:date:2,100,600,200,620")
    assert p.returncode == 0, p.stderr
    created = json.loads(p.stdout)
    envelope = created["id"]
    assert [f["name"] for f in created["recipients"][0]["form_fields"]] == ["alice_name", "alice_note"]
    assert created["recipients"][1]["form_fields"][0]["kind"] == "FORM_FIELD_KIND_CHECKBOX"
    assert created["recipients"][1]["form_fields"][0]["required"] is True
    assert _signet(world, "alice", "envelope", "send", envelope).returncode == 0

    me = world["people"]["alice"]
    assert _signet(world, "alice", "envelope", "sign", envelope, "--send-code", "--token",
                   me["token"].label).returncode == 0
    code = latest_code(world["running"].env, me["phone"])
    p = _signet(world, "alice", "envelope", "sign", envelope, "--token", me["token"].label, "--pin-env", "PIN",
                "--code-env", "CODE", "--field", "alice_name=Alice Wang", code=code)
    assert p.returncode == 0, p.stderr

    assert _signet(world, "bob", "envelope", "sign", envelope, "--send-code", "--token",
                   bob["token"].label).returncode == 0
    code = latest_code(world["running"].env, bob["phone"])
    before = json.loads(_signet(world, "bob", "envelope", "show", envelope).stdout)
    forged = _signet(world, "bob", "envelope", "sign", envelope, "--token", bob["token"].label, "--pin-env", "PIN",
                     "--code-env", "CODE", "--field", "bob_agree=yes", "--field", "alice_note=void", code=code)
    assert forged.returncode == 5, forged.stderr
    assert json.loads(forged.stdout)["reason"] == "REVISION_FOREIGN_FIELD"
    after = json.loads(_signet(world, "bob", "envelope", "show", envelope).stdout)
    assert after["documents"] == before["documents"] and after["recipients"] == before["recipients"]
    p = _signet(world, "bob", "envelope", "sign", envelope, "--token", bob["token"].label, "--pin-env", "PIN",
                "--code-env", "CODE", "--field", "bob_agree=yes", "--field", "bob_date=2026-12-01", code=code)
    assert p.returncode == 0, p.stderr

    out = world["base"] / "form-final"
    assert _signet(world, "alice", "envelope", "download", envelope, "-o", str(out)).returncode == 0
    final = out / "form.pdf"
    assert final.read_bytes().startswith(contract.read_bytes())
    assert form_field_values(final.read_bytes()) == {"alice_name": "Alice Wang", "alice_note": "",
                                                      "bob_agree": "yes", "bob_date": "2026-12-01"}
    nss = make_nssdb(world["base"] / "nss-form", world["running"].env.signing_root.read_bytes())
    text = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(final)], capture_output=True,
                          text=True).stdout
    assert text.count("Signature is Valid.") == 2 and text.count("Certificate is Trusted.") == 2, text
    events = [e for e in json.loads(_signet(world, "alice", "envelope", "events", envelope).stdout)["events"]]
    types = [e["type"] for e in events if e["type"] != "sealed"]  # the seal may follow at any moment
    assert types.count("refused") == 1 and types[-1] == "completed"


def test_bulk_send_one_envelope_per_csv_row(world):
    alice, bob = world["people"]["alice"], world["people"]["bob"]
    contract = world["base"] / "nda.pdf"
    make_contract_pdf(contract, "Mutual NDA", ["Alice Wang", "Counterparty"], pages=1)
    p = _signet(world, "alice", "envelope", "create", "--title", "NDA with {{company}}", "--message",
                "Dear {{name}}, the NDA for {{company}}.", "--document", str(contract),
                "--recipient", "{{signer}}:signer:1")
    assert p.returncode == 0, p.stderr
    template = json.loads(p.stdout)["id"]
    p = _signet(world, "alice", "envelope", "send", template)  # a template is not sent itself
    assert p.returncode != 0 and json.loads(p.stdout)["reason"] == "RECIPIENT_PLACEHOLDER"
    rows = world["base"] / "rows.csv"
    rows.write_text("signer,name,company\n"
                    f"{bob['id']},Bob,Bob Ltd\n"
                    f"p_{'0' * 24},Nobody,Ghost Ltd\n"
                    f"{alice['id']},Alice,\"Wang & Co, Ltd\"\n", encoding="utf-8")
    p = _signet(world, "alice", "envelope", "bulk-send", template, str(rows))
    assert p.returncode == 1, p.stderr  # a row failed
    report = json.loads(p.stdout)
    assert (report["sent"], report["failed"]) == (2, 1)
    ok_bob, bad, ok_alice = report["results"]
    assert (bad["row"], bad["line"], bad["error"]["code"], bad["error"]["reason"]) == (2, 3, "NOT_FOUND",
                                                                                     "PERSON_NOT_FOUND")
    shown = json.loads(_signet(world, "bob", "envelope", "show", ok_bob["envelope_id"]).stdout)
    assert shown["state"] == "ENVELOPE_STATE_SENT" and shown["title"] == "NDA with Bob Ltd"
    assert shown["message"] == "Dear Bob, the NDA for Bob Ltd."
    assert [r["person_id"] for r in shown["recipients"]] == [bob["id"]]
    assert shown["documents"][0]["original_sha256"]  # locked at send
    shown = json.loads(_signet(world, "alice", "envelope", "show", ok_alice["envelope_id"]).stdout)
    assert shown["title"] == "NDA with Wang & Co, Ltd" and shown["state"] == "ENVELOPE_STATE_SENT"
    inbox = json.loads(_signet(world, "bob", "inbox").stdout)
    assert ok_bob["envelope_id"] in [e["id"] for e in inbox.get("envelopes", [])]
    # the same command again: the same envelopes, nothing sent twice; the template is still a draft
    again = _signet(world, "alice", "envelope", "bulk-send", template, str(rows))
    assert again.returncode == 1
    assert [r.get("envelope_id") for r in json.loads(again.stdout)["results"]] == \
        [ok_bob["envelope_id"], None, ok_alice["envelope_id"]]
    listed = json.loads(_signet(world, "alice", "envelope", "list", "--view", "sent").stdout)["envelopes"]
    assert sum(e["title"].startswith("NDA with") for e in listed) == 3  # the template and two envelopes
    assert json.loads(_signet(world, "alice", "envelope", "show", template).stdout)["state"] == \
        "ENVELOPE_STATE_DRAFT"
    # the text report, and a file the CLI cannot use
    text = cli(alice["agent"], "envelope", "bulk-send", template, str(rows))
    assert text.returncode == 1 and "2 sent, 1 failed" in text.stdout and "FAILED NOT_FOUND" in text.stdout
    empty = world["base"] / "empty.csv"
    empty.write_text("signer,name\n")
    p = _signet(world, "alice", "envelope", "bulk-send", template, str(empty))
    assert p.returncode == 9 and "no rows" in json.loads(p.stdout)["error"]


def test_a_completed_contract_is_sealed_to_b_lta_archived_encrypted_and_exported(world):
    """The running server's sealer takes the completed envelope: every signature B-LTA under the signing root
    (pyHanko AdES LTA validation, revocation required), pdfsig trusts the parties and the seal, the certificate
    of completion is sealed too; the archive holds them encrypted (no plaintext marker on disk) and signet-admin
    contract export gets them back."""
    import asyncio
    import io
    import time

    from asn1crypto import pem, x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.validation import ades
    from pyhanko.sign.validation.policy_decl import PdfSignatureValidationSpec, SignatureValidationSpec
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    from .server_harness import admin

    alice, bob = world["people"]["alice"], world["people"]["bob"]
    running = world["running"]
    contract = world["base"] / "sealed-lease.pdf"
    make_contract_pdf(contract, "Sealed lease Quokkaberry", ["Alice Wang", "Bob Li"], pages=2)
    p = _signet(world, "alice", "envelope", "create", "--title", "Sealed lease Quokkaberry", "--document",
                str(contract), "--recipient", f"{alice['id']}:signer:1", "--recipient", f"{bob['id']}:signer:2")
    assert p.returncode == 0, p.stderr
    envelope = json.loads(p.stdout)["id"]
    assert _signet(world, "alice", "envelope", "send", envelope).returncode == 0
    _sign(world, "alice", envelope)
    _sign(world, "bob", envelope)
    deadline = time.monotonic() + 120
    while True:
        types = [e["type"] for e in json.loads(_signet(world, "alice", "envelope", "events", envelope).stdout)
                 ["events"]]
        if "sealed" in types or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert types[-2:] == ["completed", "sealed"], types
    # the seal signed a tree head over its own event; the log verifies
    report = admin(running.env, "audit", "verify")
    assert report["ok"] and report["heads"] >= 1, report
    # a KEK rotation re-wraps every data key (content untouched): the export below decrypts under the new KEK
    rotated = admin(running.env, "archive", "rotate-kek", f"signet-archive-kek-{envelope[-6:]}")
    assert rotated["rewrapped"] >= 4 and rotated["retired"], rotated
    out = world["base"] / "export"
    got = admin(running.env, "contract", "export", envelope, "--out", str(out))
    sealed = (out / "sealed-lease.pdf").read_bytes()
    assert sealed.startswith((world["base"] / "sealed-lease.pdf").read_bytes()[:1000])
    root = running.env.signing_root.read_bytes()
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(cert_validation_policy=CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[x509.Certificate.load(pem.unarmor(root)[2])]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))))

    async def lta(data: bytes):
        r = PdfFileReader(io.BytesIO(data))
        return [(s.field_name, (await ades.ades_lta_validation(s, spec)).ades_subindic)
                for s in r.embedded_regular_signatures]

    verdicts = asyncio.run(lta(sealed))
    assert len(verdicts) == 3 and all(v is AdESPassed.OK for _, v in verdicts), verdicts
    nss = make_nssdb(world["base"] / "nss-sealed", root)
    text = subprocess.run(["pdfsig", "-no-ocsp", "-nssdir", f"sql:{nss}", str(out / "sealed-lease.pdf")],
                          capture_output=True, text=True).stdout
    assert text.count("Signature is Valid.") == 3 and text.count("Certificate is Trusted.") == 3, text
    certificate = (out / "certificate-of-completion.pdf").read_bytes()
    [(name, verdict)] = asyncio.run(lta(certificate))
    assert name == "signet-seal" and verdict is AdESPassed.OK
    text = subprocess.run(["pdftotext", str(out / "certificate-of-completion.pdf"), "-"], capture_output=True,
                          text=True).stdout
    assert envelope in text and "Alice Wang" in text and "Bob Li" in text and "Verification summary" in text
    events = [json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0] == "created" and events[-1] == "completed"
    assert {o["kind"] for o in got["objects"]} == {"document", "certificate", "events"}
    # nothing of the contract in plaintext at rest: no title word, party name or phrase of its text in the
    # database file, its WAL, the archive or any other file of the server's state
    markers = [b"Quokkaberry", *(PEOPLE[w][0].encode() for w in PEOPLE), *(PEOPLE[w][0].split()[-1].encode()
                                                                           for w in PEOPLE)]
    files = [f for f in running.env.state.rglob("*") if f.is_file()]
    if os.environ.get("SIGNET_TEST_STORE") == "postgresql":  # the database's files: the test cluster's
        from tests.conftest import shared_pg_cluster

        files += [f for f in shared_pg_cluster().data.rglob("*") if f.is_file()]
    else:
        assert any(f.name.endswith("-wal") for f in files) and any(f.suffix == ".sqlite" for f in files)
    found = [(f.name, m.decode()) for f in files for m in markers if m in f.read_bytes()]
    assert found == [], found
    # the evidence bundle: every file named in the signed manifest, the manifest's CMS judged by openssl, the
    # envelope's audit leaves with proofs to a signed head, and the server's own report: every signature passed
    import hashlib
    import zipfile

    bundle = world["base"] / "evidence.zip"
    admin(running.env, "contract", "evidence", envelope, "-o", str(bundle))
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        manifest_bytes = z.read("manifest.json")
        manifest = json.loads(manifest_bytes)
        for name, meta in manifest["files"].items():
            assert hashlib.sha256(z.read(name)).hexdigest() == meta["sha256"], name
        assert names == {*manifest["files"], "manifest.json", "manifest.p7s"}
        (world["base"] / "manifest.json").write_bytes(manifest_bytes)
        (world["base"] / "manifest.p7s").write_bytes(z.read("manifest.p7s"))
        report = json.loads(z.read("report.json"))
        leaves = [json.loads(line) for line in z.read("audit/leaves.jsonl").decode().splitlines()]
    assert {"documents/sealed-lease.pdf", "certificate-of-completion.pdf", "events.jsonl", "audit/head.json",
            "certs/audit.pem", "certs/seal.pem"} <= names
    assert any(n.startswith("revocation/ocsp-") for n in names)
    r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-content",
                        str(world["base"] / "manifest.json"), "-in", str(world["base"] / "manifest.p7s"),
                        "-CAfile", str(running.env.signing_root), "-purpose", "any", "-out", "/dev/null"],
                       capture_output=True, text=True)
    assert "Verification successful" in r.stderr, r.stderr
    assert all(s["passed"] for sigs in report["documents"].values() for s in sigs), report
    kinds = [leaf["kind"] for leaf in leaves]
    assert kinds[0] == "envelope.created" and "envelope.sealed" in kinds and kinds[-1] == "evidence.exported"
    assert all(leaf["seq"] < manifest["audit"]["tree_size"] for leaf in leaves)
    # found again by a word of its text and by a party's Chinese name, through the API (ContractService)
    for words in (["understood", "agreement"], ["王爱丽"]):
        p = _signet(world, "bob", "contracts", "search", *words)
        assert p.returncode == 0, p.stderr
        assert envelope in [c["envelopeId"] for c in json.loads(p.stdout).get("contracts", [])], (words, p.stdout)
    p = _signet(world, "bob", "contracts", "search", "Quokkaberry", "nonexistentword")
    assert p.returncode == 0 and not json.loads(p.stdout).get("contracts"), p.stdout  # every word must match
    shown = json.loads(_signet(world, "alice", "contracts", "show", envelope).stdout)
    assert {f["name"] for f in shown["files"]} == {"sealed-lease.pdf", "certificate-of-completion.pdf",
                                                     "events.jsonl"}
    p = _signet(world, "alice", "contracts", "download", envelope, "-o", str(world["base"] / "dl"))
    assert p.returncode == 0, p.stderr
    assert (world["base"] / "dl" / "sealed-lease.pdf").read_bytes() == sealed
    p = _signet(world, "bob", "evidence", envelope, "-o", str(world["base"] / "bob-evidence.zip"))
    assert p.returncode == 0, p.stderr
    assert zipfile.is_zipfile(world["base"] / "bob-evidence.zip")
    # a phrase of the contract's text is nowhere on the server's disk: store, WAL, archive
    for f in running.env.state.rglob("*"):
        if f.is_file():
            assert b"has read and understood" not in f.read_bytes(), f
    # checked offline by the CLI with nothing but the bundle and the signing root; one changed byte is named
    me = world["people"]["bob"]
    p = cli(me["agent"], "--json", "verify-evidence", str(world["base"] / "bob-evidence.zip"), "--trust",
            str(running.env.signing_root))
    assert p.returncode == 0, p.stdout + p.stderr
    checks = json.loads(p.stdout)["checks"]
    assert checks and all(c["ok"] for c in checks), checks
    tampered = world["base"] / "tampered.zip"
    with zipfile.ZipFile(world["base"] / "bob-evidence.zip") as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "events.jsonl":
                data = data.replace(b'"completed"', b'"compleTed"')
            dst.writestr(item, data)
    p = cli(me["agent"], "--json", "verify-evidence", str(tampered), "--trust", str(running.env.signing_root))
    assert p.returncode == 3, p.stdout + p.stderr  # "not valid", as for a signature
    failed = [c for c in json.loads(p.stdout)["checks"] if not c["ok"]]
    assert failed and all(c["breaks"] for c in failed), failed
