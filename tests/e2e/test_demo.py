"""`make demo` end to end (`python -m scripts.demo`), in a temporary demo state so ``demo-state/`` is left alone.

The demo runs once for the module, for real -- SoftHSM tokens, demo CA, in-process PAdES, the agent driven by the
``signet`` CLI, the server, enrollment through a second agent -- with ``SIGNET_DEMO_FACTS`` and
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
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PEOPLE = {"Alice Wang 王爱丽": "alice-token", "Bob Li 李博": "bob-token"}

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
    assert {"token", "agent", "server"} <= f.keys()


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
    assert set(people) == set(PEOPLE)
    assert s["organisation"]["name"] == "Signet Leasing Ltd."
    assert {o["login"] for o in s["operators"]} == {"demo-operator", "demo-reviewer"}
    for name, token in PEOPLE.items():
        p = people[name]
        assert p["token_label"] == token and p["person_id"]
        assert p["registered_status"] == "PERSON_STATUS_PENDING" and p["phone_verified"] is True
        assert p["approval"]["kind"] == "approved" and p["approval"]["actor"] == "operator:demo-reviewer"
        assert re.fullmatch(r"[0-9a-f]+", p["key_id"]) and p["key_label"] == "contract-signing"
        assert p["subject"]["common_name"] == name
        assert p["subject"]["serial_number"].startswith("IDCCN-")
        assert p["subject"]["organization_name"] == "Signet Leasing Ltd." and p["subject"]["country_name"] == "CN"
        assert name in p["certificate_subject"]
        assert p["ocsp"]["status"] == "good" and p["ocsp"]["response_verified"] is True
        # the record `signet enroll` wrote agrees
        record = json.loads((demo.state / "server" / "agent" / "tls" / token / "enrollment.json").read_text())
        assert (record["person_id"], record["key_id"], record["serial"]) == (
            p["person_id"], p["key_id"], p["certificate_serial"])
    assert people["Alice Wang 王爱丽"]["key_id"] != people["Bob Li 李博"]["key_id"]
    agent = s["signers_agent"]
    assert agent["health"] == "SERVING" and set(PEOPLE.values()) <= set(agent["tokens"])
    assert agent["exit_code"] == 0 and agent["socket_removed"] is True and agent["pin_in_log"] is False
    assert Counter((e["operation"], e["outcome"]) for e in agent["journal"]) == Counter(
        {("generate_key", "ok"): 2, ("create_csr", "ok"): 2, ("import_certificate", "ok"): 2})
    assert s["exit_code"] == 0
    assert s["duration_seconds"] > 0


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


def test_humans_are_told_the_key_facts(demo: DemoRun) -> None:
    _ok(demo)
    for name, token in PEOPLE.items():
        assert name in demo.stdout and token in demo.stdout
    assert "--json" in demo.stdout  # the commands are shown as run
    assert demo.facts["token"]["key_id"] in demo.stdout


def _occurs(secret: str, text: str) -> bool:
    """A short numeric secret counts only as a whole word (a 6-digit code may occur inside a hex serial)."""
    if len(secret) >= 10:
        return secret in text
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


def test_no_pin_or_code_in_the_output_the_facts_or_the_logs(demo: DemoRun) -> None:
    _ok(demo)
    kinds = Counter("code" if "code" in s["what"] else "SO PIN" if "SO PIN" in s["what"] else "PIN"
                    for s in demo.secrets)
    # the demo registered every secret it used: 4 PINs, 4 SO PINs, 2 phone codes and 2 enrollment codes
    assert kinds == Counter({"PIN": 4, "SO PIN": 4, "code": 4}), demo.secrets
    logs = {str(p): p.read_text(errors="replace") for p in demo.state.rglob("*.log")}
    assert len(logs) >= 3, sorted(logs)  # two agents and the server
    places = {"stdout": demo.stdout, "stderr": demo.stderr, "facts": demo.facts_text, **logs}
    leaks = [f"{s['what']} in {where}" for s in demo.secrets for where, text in places.items()
             if _occurs(s["value"], text)]
    assert not leaks
