"""Signatures/s through hsm.Token.sign_digest (1, 2, 4 callers) and Token.sign_digests (batches of 64; 1, 2
callers) next to raw python-pkcs11 (1, 2 sessions), in alternating rounds (median reported).

Raw baseline: ``key.sign`` on a private-key object found once in each thread's own session,
same mechanism as hsm/ (CKM_RSA_PKCS over a prebuilt DigestInfo, CKM_ECDSA over a digest),
on the same module instance (initialised with CKF_OS_LOCKING_OK by hsm.module.load(): with
python-pkcs11's own C_Initialize(NULL) two raw threads crash SoftHSM).  Target: hsm/ with 2
callers >= 0.90x raw with 2 sessions.  Uses its own SoftHSM token directory under a temp dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .common import Report, alternate, rate

ROOT = Path(__file__).resolve().parent.parent
PIN, SO_PIN, LABEL = "1234", "12345678", "bench"
SECONDS = float(os.environ.get("BENCH_SECONDS", "1.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
BATCH = 64


def _softhsm(state: Path) -> None:
    """A token in a fresh directory; SOFTHSM2_CONF must be set before hsm/ loads the module."""
    out = subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                         check=True, capture_output=True, text=True).stdout
    os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")
    assert "SOFTHSM2_CONF" in out


def _raw_signer(raw_token: Any, key_id: bytes, is_rsa: bool, dgst: bytes) -> Any:
    """A per-thread callable: its own session and private-key object, python-pkcs11 only."""
    from pkcs11 import Attribute, Mechanism, ObjectClass

    local = threading.local()
    data = SHA256_DIGEST_INFO_PREFIX + dgst if is_rsa else dgst
    mech = Mechanism.RSA_PKCS if is_rsa else Mechanism.ECDSA
    sessions: list[Any] = []
    lock = threading.Lock()

    def sign() -> bytes:
        key = getattr(local, "key", None)
        if key is None:
            s = raw_token.open(rw=True)  # the application is already logged in: a user session
            with lock:
                sessions.append(s)
            key = local.key = next(iter(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                  Attribute.ID: key_id})))
        return key.sign(data, mechanism=mech)

    def close() -> None:
        for s in sessions:
            s.close()

    sign.close = close  # type: ignore[attr-defined]
    return sign


def raw_rate(raw_token: Any, key_id: bytes, is_rsa: bool, dgst: bytes, threads: int, seconds: float) -> float:
    """Raw python-pkcs11 signatures/s with ``threads`` sessions of their own (the baseline of every bench)."""
    signer = _raw_signer(raw_token, key_id, is_rsa, dgst)
    try:
        return rate(signer, threads, seconds)
    finally:
        signer.close()


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-hsm-"))
    try:
        _softhsm(state)
        from hsm import Hsm
        from hsm.tokens import find_raw_token

        h = Hsm(pin_state=state / "pins.json")
        tok = h.token(label=LABEL)
        tok.login(PIN)
        report = Report("hsm_sign")
        dgst = hashlib.sha256(b"benchmark document").digest()
        for alg, name in (("rsa-2048", "rsa2048"), ("p256", "p256")):
            key = tok.generate_key(alg, f"bench-{alg}")
            with h.module.shared():
                raw_token = find_raw_token(h.module, label=LABEL)
            kid = bytes.fromhex(key.key_id)
            batch = [dgst] * BATCH

            def raw(n: int, kid: bytes = kid, is_rsa: bool = key.algorithm.is_rsa, raw_token: Any = raw_token) -> float:
                signer = _raw_signer(raw_token, kid, is_rsa, dgst)
                try:
                    return rate(signer, n, SECONDS)
                finally:
                    signer.close()

            def hsm(n: int, key_id: str = key.key_id) -> float:
                return rate(lambda: tok.sign_digest(key_id, dgst), n, SECONDS)

            def batched(n: int, key_id: str = key.key_id, batch: list[bytes] = batch) -> float:
                return BATCH * rate(lambda: tok.sign_digests(key_id, batch), n, SECONDS)

            # rounds alternate raw and hsm runs so that load from elsewhere hits both alike; medians reported
            variants: dict[str, Callable[[], float]] = {f"raw {n}": partial(raw, n) for n in (1, 2)}
            variants.update({f"hsm {n}": partial(hsm, n) for n in (1, 2, 4)})
            variants.update({f"batch {n}": partial(batched, n) for n in (1, 2)})
            runs = alternate(variants, ROUNDS)
            for n in (1, 2):
                report.add(f"{name} raw {n} session{'s' if n > 1 else ''}", runs[f"raw {n}"], "sig/s")
            for n in (1, 2, 4):
                base = f"{name} raw {min(n, 2)} session{'s' if n > 1 else ''}"
                report.add(f"{name} hsm {n} caller{'s' if n > 1 else ''}", runs[f"hsm {n}"], "sig/s", baseline=base)
            for n in (1, 2):
                base = f"{name} raw {n} session{'s' if n > 1 else ''}"
                report.add(f"{name} hsm batch{BATCH} {n} caller{'s' if n > 1 else ''}", runs[f"batch {n}"], "sig/s",
                           baseline=base)
        tok.logout()
        report.finish()
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
