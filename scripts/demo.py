"""`make demo`: the contract journey, stage by stage, from a clean ``demo-state/``.

Stage 1 (this file's steps): a SoftHSM token, a key generated on it, a PKCS#10 request signed by the token, a
certificate from a demo CA stored back on the token, a sample contract signed with the token key (PAdES B-B) into
``demo-state/out/``, and an independent check with ``pdfsig`` against an NSS database that trusts the demo CA. Then
the agent stage (``scripts/demo_agent.py``), the server stage (``scripts/demo_server.py``: the server, Alice, Bob
and Carol verified; Alice and Bob each with their own token behind their own agent, enrolled; Carol, who has no
token, given a remote-signing key on the server token) and the envelope stage (``scripts/demo_envelopes.py``: Alice
sends Bob and Carol a contract, Alice and Bob sign it on their tokens through their agents, Carol remotely with her
code and no agent, the final PDF with three signatures is checked by pdfsig and the timeline printed); then the
agents and the server stop. Agents and the server run as :mod:`scripts.processes` processes, the same ones the tests
and benchmarks use; a failing step stops whatever is still running before the demo reports the failure. Every
``signet`` call whose answer the demo uses runs with ``--json``.

For a human the demo prints each step: the commands it runs, shortened outputs, the verdicts.  PINs and one-time
codes reach processes only through environment variables; they are never printed (``say`` refuses a line that holds
one) and never written to the facts.

Environment:
  SIGNET_DEMO_STATE    the state directory (default ``demo-state/`` in the repository; wiped at the start)
  SIGNET_DEMO_FACTS    a path: write the facts file there (below)
  SIGNET_DEMO_SECRETS  a path: write there, mode 0600, every PIN, code and client secret the demo used, as
                       ``[{"what": ..., "value": ...}]`` -- for the end-to-end test only, which proves none of them
                       appears in the output, the facts or the logs

The facts file (JSON, written atomically at the end, also after a failure) holds what each stage *established*:
the answers of ``signet --json``, the verdicts of the independent tools, exit codes.  Keys::

  format              "signet-demo-facts/1"
  ok                  true when every step succeeded
  failure             null, or {"step": N, "title": ..., "error": ...}
  state_dir           the demo state directory (absolute)
  duration_seconds    the whole run
  steps               [{"n", "title", "ok", "seconds"}], in order, up to the one that failed
  token               stage 1 (in-process, no agent):
    label, serial, key_id      the SoftHSM token and the P-256 key generated on it
    certificate                {"subject", "serial" (hex), "issuer", "on_token" (read back identical)}
    signed_pdf                 {"path", "field", "size", "sha256"}
    verify                     Signet's own verdict (offline): {"valid", "warnings",
                               "signatures": [{"field_name", "ok", "intact", "valid", "trusted", "coverage"}]}
    pdfsig                     {"signature_valid", "total_document_signed", "certificate_trusted"}: booleans
  agent               the agent stage:
    config, socket, socket_mode ("0600"), health ("SERVING"), ready_seconds
    tokens                     token labels (`signet --json tokens`)
    unlock                     `signet --json unlock`: token_serial, expires_at, signatures_left (never the grant)
    keys                       key ids (`signet --json keys`)
    sign                       {"contract", "annex"}: the `signet --json sign` answers (output, format,
                               output_size, output_sha256, field_name, signer_subject, key_id, token_serial, ...)
    verify                     {"contract", "annex"}: the `signet --json verify` answers (valid, document_sha256,
                               signatures: [{valid, intact, trusted, coverage, modification_level, warnings, ...}])
    pdfsig                     as in stage 1, for the contract the agent signed
    openssl_cms_verify         {"ok", "exit_code"}: `openssl cms -verify` of the annex's .p7s against the demo root
    lock                       `signet --json lock` (logged_out)
    exit_code, socket_removed, pin_in_log    the agent after SIGTERM
    journal                    [{"operation", "outcome"}], oldest first
    duration_seconds
  server              the server stage:
    config, ports {"api", "enroll", "http"}, signing_root, tls_root (their subjects, from the files init wrote)
    ready                      signet-server's ready line
    organisation               {"id", "name"}
    operators                  [{"login", "serial", "caller"}]
    people                     one object per person, Alice, Bob, Carol:
      name, person_id, token_label (null for Carol: no token)
      registered_status        the person's status right after registration
      phone_verified           the phone code was accepted
      approval                 {"kind", "actor", "evidence_records"}: the last evidence record after approval
      Alice and Bob only:
      key_id, key_label        the key enrolled on their own token (`signet --json keys`, agreeing with the
                               enrollment record `signet enroll` wrote)
      certificate_serial       hex, as the server issued it (the certificate on the token carries it)
      subject                  {"common_name", "serial_number", "organization_name", "country_name"}
      certificate_subject      the subject as `signet --json keys` shows it
      issuer, not_before, not_after, eku
      ocsp                     {"status" ("good"), "response_verified"}: `openssl ocsp` against the running server
      agent                    their own agent (``demo-state/<first name>/agent``, seeing only their token in
                               ``demo-state/<first name>/softhsm``): config, socket, socket_mode, health,
                               ready_seconds, tokens, exit_code, socket_removed, pin_in_log, journal
      Carol only:
      remote_key               what `signet-admin --json remote-key create` made (as demo-reviewer: four eyes):
                               key_id, certificate_serial (hex), tls_serial, operator, identity_dir (its --out,
                               ``demo-state/carol/identity``), files {name: mode}, api (from identity.json);
                               the certificate (from the server's ListCertificates): subject {"common_name",
                               "serial_number", "organization_name", "country_name"}, certificate_subject (RFC 4514),
                               issuer, not_before, not_after, policies (dotted OIDs), server_held_marker (the
                               remote-key marker is among them); on_server_token: the key as ``pkcs11-tool -O``
                               logged in to the server token shows it {"token", "object", "label", "sensitive",
                               "always_sensitive", "never_extractable", "extractable", "local"}; ocsp as above
    exit_code                  the server after SIGTERM
    duration_seconds           the server stage, the envelope stage included
  envelope            the envelope stage (answers of `signet --json envelope ...` through Alice's or Bob's agent,
                      or for Carol with ``--identity DIR`` and no agent; times as RFC 3339 UTC to the millisecond,
                      "2030-01-02T03:04:05.678Z", as the server records them):
    id, title, sender_name
    created                    {"state" (ENVELOPE_STATE_DRAFT), "created_at"}
    document                   {"id", "name", "pages", "size", "sha256" (as uploaded), "input" (the file sent)}
    recipients                 [{"name", "person_id", "recipient_id", "routing_order", "role", "signing_method"}],
                               Alice (1), Bob (2), Carol (3, SIGNING_METHOD_REMOTE)
    sent                       {"state", "sent_at" (the exact send time the answer gave), "expires_at",
                               "original_sha256" (locked), "recipients": [{"name", "state", "notified_at"}]}
    bob_inbox_before           envelope ids in Bob's `signet inbox` right after sending (his turn has not come)
    signatures                 one per signer, in order: {"name", "method" ("token" or "remote"), "code_sent"
                               ({"channel", "code_id", "revision_sha256"}: what `sign --send-code` answered),
                               "shown" (what the agent's confirmation program was shown: operation, file_name,
                               sha256, size, pages, signer_subject, token, key_id; null for Carol: no agent),
                               "answer" (of `sign --code-env`), "after" ({"state", "recipient_state", "signed_at",
                               "certificate_serial", "current_sha256", "signatures", "recipients" {name: state}}:
                               `envelope show` after it), "seconds"}
    notices_to_bob             [{"subject", "topic"}]: envelope e-mails to Bob in the outbox
    bob_inbox                  envelope ids in Bob's `signet inbox` after Alice signed
    bob_show                   what `signet envelope show` told Bob: state, sender_name, title, document {name,
                               pages, signatures, original_sha256, current_sha256}, recipients {name: state}
    notices_to_carol, carol_inbox, carol_show    the same for Carol after Bob signed (`--identity`, no agent)
    download                   {"path" (demo-state/out/...), "size", "sha256", "starts_with_original"}
    pdfsig                     {"exit_code", "signatures": [{"field", "signer", "signature_valid",
                               "certificate_trusted", "total_document_signed"}]}: its verdict per signature (three),
                               NSS database trusting the Signet signing root only
    verify                     the `signet --json verify` answer (Bob's agent, revocation online; per signature
                               ``signing_policy``: the token or the remote-signing policy OID)
    verify_report              formats' verifier in-process (revocation online), for what the CLI leaves out:
                               {"valid", "signatures": [{"field_name", "signer_subject", "ok", "trusted",
                               "coverage", "remote_key"}]}
    events                     [{"id", "type", "actor", "at", "detail"}]: `signet envelope events`, oldest first
                               (Carol's ``activated`` event: recipient_id, document_id, revision_sha256, code_id,
                               certificate_serial -- never the code)
    duration_seconds
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scripts.demo_agent import (
    AGENT_STEPS,
    OUT,
    ROOT,
    SECRETS,
    STATE,
    TOKEN_LABEL,
    DemoFailed,
    Step,
    pdfsig,
    rel,
    say,
)
from scripts.demo_archive import ARCHIVE_STEPS
from scripts.demo_envelopes import ENVELOPE_STEPS
from scripts.demo_server import SERVER_STEPS, SERVER_STOP_STEPS
from scripts.processes import AgentProcess

SIGNER = {"common_name": "Zhang San", "serial_number": "IDCCN-110101199003074578", "country_name": "CN"}
FACTS_FORMAT = "signet-demo-facts/1"


class Stoppable(Protocol):
    @property
    def alive(self) -> bool: ...

    def stop(self) -> int: ...


@dataclass
class Demo:
    """What the steps hand to each other, the processes still running, and the facts established so far."""

    so_pin: str = field(default_factory=lambda: SECRETS.add("the demo token's SO PIN", secrets.token_hex(8)),
                        repr=False)
    pin: str = field(default_factory=lambda: SECRETS.add("the demo token's PIN", f"{secrets.randbelow(10**6):06d}"),
                     repr=False)
    token: Any = None
    key_id: str = ""
    csr: bytes = b""
    ca: Any = None
    cert: bytes = b""
    contract: Path = STATE / "in" / "contract.pdf"
    signed: Path = OUT / "contract-signed.pdf"
    nssdb: Path = STATE / "nssdb"
    running: list[Stoppable] = field(default_factory=list)  # stopped by main() if a step fails
    facts: dict[str, Any] = field(default_factory=dict)


def step_fresh_state(d: Demo) -> None:
    if STATE.exists():
        shutil.rmtree(STATE)
    for sub in ("softhsm", "ca", "in", "out"):
        (STATE / sub).mkdir(parents=True)
    say(f"created {rel(STATE)}/ (git-ignored)")


def step_token(d: Demo) -> None:
    p = subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(STATE / "softhsm"), TOKEN_LABEL,
                        d.so_pin, d.pin], check=True, capture_output=True, text=True)
    conf = p.stdout.strip().removeprefix("export SOFTHSM2_CONF=")
    os.environ["SOFTHSM2_CONF"] = conf  # before hsm is imported: SoftHSM reads it once, at C_Initialize
    from hsm import Hsm

    d.token = Hsm(pin_state=STATE / "pin-state.json").token(label=TOKEN_LABEL)
    d.token.login(d.pin)
    d.facts["token"] = {"label": TOKEN_LABEL, "serial": d.token.serial}
    say(f"SoftHSM token {TOKEN_LABEL!r} (serial {d.token.serial}) initialised and logged in; config {rel(conf)}")


def step_keygen(d: Demo) -> None:
    info = d.token.generate_key("p256", "contract-signing")
    d.key_id = info.key_id
    d.facts["token"].update(key_id=info.key_id, key_algorithm="p256")
    say(f"EC P-256 key generated on the token: id {info.key_id}, non-extractable")


def step_csr(d: Demo) -> None:
    d.csr = d.token.create_csr(d.key_id, SIGNER, emails=["zhang.san@example.com"])
    (STATE / "ca" / "request.der").write_bytes(d.csr)
    say(f"PKCS#10 request for CN={SIGNER['common_name']}, serialNumber={SIGNER['serial_number']} "
        f"signed by the token ({len(d.csr)} bytes)")


def step_issue(d: Demo) -> None:
    from cryptography import x509

    from scripts.demo_ca import DemoCA

    d.ca = DemoCA(STATE / "ca")
    d.cert = d.ca.issue(d.csr)
    (STATE / "ca" / "signer.der").write_bytes(d.cert)
    cert = x509.load_der_x509_certificate(d.cert)
    d.facts["token"]["certificate"] = {"subject": cert.subject.rfc4514_string(), "serial": f"{cert.serial_number:x}",
                                       "issuer": cert.issuer.rfc4514_string()}
    say(f"demo CA issued the certificate ({len(d.cert)} bytes, serial {cert.serial_number:x}, emailProtection, "
        "nonRepudiation)")


def step_store_cert(d: Demo) -> None:
    d.token.import_certificate(d.key_id, d.cert, [d.ca.root_der])
    same = d.token.certificate(d.key_id) == d.cert
    d.facts["token"]["certificate"]["on_token"] = same
    if not same:
        raise DemoFailed("the certificate read back from the token differs from the one stored")
    say("certificate and CA chain stored on the token next to the key (same CKA_ID), read back identical")


def step_sign(d: Demo) -> None:
    from formats import PdfSignOptions, TokenSigner, sign_pdf
    from formats.samplepdf import make_contract_pdf

    make_contract_pdf(d.contract, "Equipment Lease Agreement", ["Zhang San", "Signet Leasing Ltd."], pages=2)
    signer = TokenSigner(d.token, d.key_id)  # certificate and chain read from the token
    t0 = time.perf_counter()
    res = sign_pdf(d.contract, d.signed, signer, PdfSignOptions(
        reason="I agree to the terms of this contract", location="Beijing", visible=True, page=1,
        box=(56, 520, 300, 580)))
    ms = (time.perf_counter() - t0) * 1000
    d.facts["token"]["signed_pdf"] = {"path": str(d.signed), "field": res.field_name, "size": res.size,
                                      "sha256": res.sha256}
    say(f"signed {rel(d.contract)} -> {rel(d.signed)} (PAdES B-B, field {res.field_name}, {res.size} bytes, "
        f"sha256 {res.sha256[:16]}..., {ms:.0f} ms)")


def step_nssdb(d: Demo) -> None:
    from scripts.demo_ca import nss_trust

    nss_trust(d.nssdb, d.ca.root_pem_path)
    say(f"NSS database {rel(d.nssdb)} trusts the demo CA (CT,C,C)")


def step_verify_pyhanko(d: Demo) -> None:
    from formats import verify_pdf

    # the demo CA publishes no revocation data: verified offline, and the report says revocation was not checked
    rep = verify_pdf(d.signed, [d.ca.root_der], revocation="offline")
    d.facts["token"]["verify"] = {
        "valid": rep.valid, "warnings": rep.all_warnings(),
        "signatures": [{"field_name": s.field_name, "ok": s.ok, "intact": s.intact, "valid": s.valid,
                        "trusted": s.trusted, "coverage": s.coverage} for s in rep.signatures]}
    for s in rep.signatures:
        say(f"{s.field_name}: {s.signer_subject} | intact={s.intact} valid={s.valid} trusted={s.trusted} "
            f"coverage={s.coverage}")
    for w in rep.all_warnings():
        say(f"note: {w}")
    if not rep.valid:
        raise DemoFailed("verify_pdf: " + "; ".join(rep.reasons()))
    say(f"Signet verdict: {'VALID' if rep.valid else 'NOT VALID'}")


def step_pdfsig(d: Demo) -> None:
    d.facts["token"]["pdfsig"] = pdfsig(d.nssdb, d.signed)


STEPS: list[tuple[str, Step]] = [
    ("Fresh demo state", step_fresh_state),
    ("SoftHSM token", step_token),
    ("Key pair generated on the token", step_keygen),
    ("Certificate request signed by the token", step_csr),
    ("Certificate from the demo CA", step_issue),
    ("Certificate stored on the token", step_store_cert),
    ("Sample contract signed with the token key", step_sign),
    ("NSS database trusting the demo CA", step_nssdb),
    ("Verified with Signet (pyHanko validation)", step_verify_pyhanko),
    ("Verified independently with pdfsig", step_pdfsig),
]
STEPS += AGENT_STEPS  # agent stage: scripts/demo_agent.py
STEPS += SERVER_STEPS  # server stage: scripts/demo_server.py
STEPS += ENVELOPE_STEPS  # envelope stage: scripts/demo_envelopes.py, on the server and agents still running
STEPS += ARCHIVE_STEPS  # archive stage: scripts/demo_archive.py (seal, archive, evidence, audit)
STEPS += SERVER_STOP_STEPS  # the people's agents and the server stopped


def _stop_running(d: Demo) -> None:
    """After a failure: stop (SIGTERM, wait) whatever still runs, newest first."""
    for proc in reversed(d.running):
        if not proc.alive:
            continue
        name = f"signet-agent in {rel(proc.dir)}" if isinstance(proc, AgentProcess) else "signet-server"
        try:
            print(f"stopped {name} after the failure (exit {proc.stop()})", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - keep stopping the others, and say what happened
            print(f"stopping {name} after the failure: {type(e).__name__}: {SECRETS.redact(str(e))}",
                  file=sys.stderr)
    d.running.clear()


def _write_file(variable: str, data: bytes, mode: int) -> None:
    path = os.environ.get(variable)
    if path:
        from signet.durable import write_atomic

        write_atomic(path, data, mode)


def _write_facts(d: Demo) -> None:
    """SIGNET_DEMO_FACTS: the facts as JSON, atomically; a registered secret in them is a failure (withheld)."""
    text = json.dumps(d.facts, indent=2, ensure_ascii=False, default=str)
    leaked = SECRETS.found_in(text)
    if leaked:
        d.facts.update(ok=False, failure={"step": None, "title": "facts file",
                                          "error": f"the facts held {', '.join(leaked)} (withheld)"})
        text = SECRETS.redact(json.dumps(d.facts, indent=2, ensure_ascii=False, default=str))
        print(f"DEMO FAILED: the facts held {', '.join(leaked)}", file=sys.stderr)
    _write_file("SIGNET_DEMO_FACTS", text.encode() + b"\n", 0o644)


def main() -> int:
    for inherited in ("SIGNET_PIN", "SIGNET_AGENT_SOCKET"):  # every command gets its socket and PIN explicitly
        os.environ.pop(inherited, None)
    d = Demo()
    d.facts.update(format=FACTS_FORMAT, ok=False, failure=None, state_dir=str(STATE), duration_seconds=None,
                   steps=[])
    t0 = time.perf_counter()
    done = False
    try:
        for n, (title, fn) in enumerate(STEPS, 1):
            print(f"[{n:2d}/{len(STEPS)}] {title}", flush=True)
            t = time.perf_counter()
            try:
                fn(d)
            except Exception as e:  # noqa: BLE001 - the demo reports which step broke, with the error, not a trace
                error = str(e) if isinstance(e, DemoFailed) else f"{type(e).__name__}: {e}"
                d.facts["failure"] = {"step": n, "title": title, "error": SECRETS.redact(error)}
                print(f"DEMO FAILED at step {n} ({title}): {SECRETS.redact(error)}", file=sys.stderr)
                return 1
            finally:
                d.facts["steps"].append({"n": n, "title": title, "ok": d.facts["failure"] is None,
                                         "seconds": round(time.perf_counter() - t, 2)})
        done = True
    finally:
        _stop_running(d)
        d.facts["ok"] = done
        d.facts["duration_seconds"] = round(time.perf_counter() - t0, 2)
        _write_facts(d)
        _write_file("SIGNET_DEMO_SECRETS", SECRETS.as_json(), 0o600)
    if not d.facts["ok"]:
        return 1
    print(f"Demo complete in {d.facts['duration_seconds']:.1f} s; outputs in {rel(OUT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
