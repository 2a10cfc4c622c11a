"""`make demo`: the contract journey, stage by stage, from a clean ``demo-state/``.

Stage 1 (this file's steps): a SoftHSM token, a key generated on it, a PKCS#10 request signed by the
token, a certificate from a demo CA stored back on the token, a sample contract signed with the token key
(PAdES B-B) into ``demo-state/out/``, and an independent check with ``pdfsig`` against an NSS database that
trusts the demo CA.  Later stages (agent, server) append their steps to ``STEPS``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.demo_agent import AGENT_STEPS
from scripts.demo_server import SERVER_STEPS

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("SIGNET_DEMO_STATE") or ROOT / "demo-state").absolute()  # tests use their own
OUT = STATE / "out"
TOKEN_LABEL = "signet-demo"  # noqa: S105 - a token label, not a PIN
SIGNER = {"common_name": "Zhang San", "serial_number": "IDCCN-110101199003074578", "country_name": "CN"}


class DemoFailed(Exception):
    pass


@dataclass
class Demo:
    """What the steps hand to each other."""

    so_pin: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)
    pin: str = field(default_factory=lambda: f"{secrets.randbelow(10**6):06d}", repr=False)
    token: Any = None
    key_id: str = ""
    csr: bytes = b""
    ca: Any = None
    cert: bytes = b""
    contract: Path = STATE / "in" / "contract.pdf"
    signed: Path = OUT / "contract-signed.pdf"
    nssdb: Path = STATE / "nssdb"


def say(msg: str) -> None:
    print(f"       {msg}", flush=True)


def rel(p: Path | str) -> Path:
    """``p`` relative to the repository when inside it (as shown and passed to tools run there), else as is."""
    return Path(p).relative_to(ROOT) if Path(p).is_relative_to(ROOT) else Path(p)


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
    say(f"SoftHSM token {TOKEN_LABEL!r} (serial {d.token.serial}) initialised and logged in; "
        f"config {rel(conf)}")


def step_keygen(d: Demo) -> None:
    info = d.token.generate_key("p256", "contract-signing")
    d.key_id = info.key_id
    say(f"EC P-256 key generated on the token: id {info.key_id}, non-extractable")


def step_csr(d: Demo) -> None:
    d.csr = d.token.create_csr(d.key_id, SIGNER, emails=["zhang.san@example.com"])
    (STATE / "ca" / "request.der").write_bytes(d.csr)
    say(f"PKCS#10 request for CN={SIGNER['common_name']}, serialNumber={SIGNER['serial_number']} "
        f"signed by the token ({len(d.csr)} bytes)")


def step_issue(d: Demo) -> None:
    from scripts.demo_ca import DemoCA

    d.ca = DemoCA(STATE / "ca")
    d.cert = d.ca.issue(d.csr)
    (STATE / "ca" / "signer.der").write_bytes(d.cert)
    say(f"demo CA issued the certificate ({len(d.cert)} bytes, emailProtection, nonRepudiation)")


def step_store_cert(d: Demo) -> None:
    d.token.import_certificate(d.key_id, d.cert, [d.ca.root_der])
    if d.token.certificate(d.key_id) != d.cert:
        raise DemoFailed("the certificate read back from the token differs from the one stored")
    say("certificate and CA chain stored on the token next to the key (same CKA_ID)")


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
    say(f"signed {rel(d.contract)} -> {rel(d.signed)} (PAdES B-B, field "
        f"{res.field_name}, {res.size} bytes, sha256 {res.sha256[:16]}..., {ms:.0f} ms)")


def step_nssdb(d: Demo) -> None:
    from scripts.demo_ca import nss_trust

    nss_trust(d.nssdb, d.ca.root_pem_path)
    say(f"NSS database {rel(d.nssdb)} trusts the demo CA (CT,C,C)")


def step_verify_pyhanko(d: Demo) -> None:
    from formats import verify_pdf

    # the demo CA publishes no revocation data: verified offline, and the report says revocation was not checked
    rep = verify_pdf(d.signed, [d.ca.root_der], revocation="offline")
    for s in rep.signatures:
        say(f"{s.field_name}: {s.signer_subject} | intact={s.intact} valid={s.valid} trusted={s.trusted} "
            f"coverage={s.coverage}")
    for w in rep.warnings:
        say(f"note: {w}")
    if not rep.valid:
        raise DemoFailed("verify_pdf: " + "; ".join(rep.reasons()))


def step_pdfsig(d: Demo) -> None:
    cmd = ["pdfsig", "-nssdir", f"sql:{rel(d.nssdb)}", str(rel(d.signed))]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    say("$ " + " ".join(cmd))
    for line in (p.stdout + p.stderr).splitlines():
        say("  " + line)
    # pdfsig exits 0 even for a broken signature: read its verdict
    need = ["Signature is Valid.", "Total document signed", "Certificate is Trusted."]
    missing = [n for n in need if n not in p.stdout]
    if missing:
        raise DemoFailed(f"pdfsig did not report: {', '.join(missing)}")
    say("pdfsig verdict: signature valid, total document signed, certificate trusted")


Step = tuple[str, Callable[[Demo], None]]
STEPS: list[Step] = [
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


def main() -> int:
    d = Demo()
    t0 = time.perf_counter()
    for n, (title, fn) in enumerate(STEPS, 1):
        print(f"[{n:2d}/{len(STEPS)}] {title}", flush=True)
        try:
            fn(d)
        except DemoFailed as e:
            print(f"DEMO FAILED at step {n}: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # noqa: BLE001 - the demo reports which step broke, with the error, not a bare trace
            print(f"DEMO FAILED at step {n} ({title}): {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    print(f"Demo complete in {time.perf_counter() - t0:.1f} s; outputs in {rel(OUT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
