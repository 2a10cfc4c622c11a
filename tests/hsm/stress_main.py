"""Stress load for hsm/, run in a child process by test_stress.py so that a SIGSEGV fails a test, not pytest.

Many threads sign through one hsm.Token (P-256 for most of the volume, some RSA-2048) with a
small session pool, so sessions are opened and closed all the time; they list keys (object
searches) between signatures; two more threads log their own tokens in and out over and over;
one thread reinitialises the module a few times mid-run.  Prints one JSON line of counts.
Environment: SOFTHSM2_CONF, STRESS_PIN, STRESS_TOKEN, STRESS_CHURN_TOKENS (comma-separated labels).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import traceback

from hsm import Hsm, KeyInfo, Token
from hsm.sessions import SessionPool
from tests.sigcheck import signing_key, verify_signature


def main() -> int:
    threads = int(os.environ.get("STRESS_THREADS", "16"))
    per_thread = int(os.environ.get("STRESS_SIGS", "1000"))
    pin = os.environ["STRESS_PIN"]
    state = tempfile.mkdtemp(prefix="stress-pins-")
    h = Hsm(pin_state=os.path.join(state, "pins.json"))
    main_info = h.token(label=os.environ["STRESS_TOKEN"]).pool
    tok = Token(SessionPool(h.module, main_info.serial, h.guard, max_idle=4))  # fewer idle than threads: churn
    tok.login(pin)
    ec_keys = [tok.generate_key("p256", f"ec-{i}") for i in range(2)]
    rsa_key = tok.generate_key("rsa-2048", "rsa")
    pubs = {k.key_id: signing_key(k.public_key_der) for k in [*ec_keys, rsa_key]}

    lock = threading.Lock()
    counts = {"signatures": 0, "verified": 0, "searches": 0, "logins": 0, "reinits": 0, "errors": 0}
    errors: list[str] = []
    start = threading.Barrier(threads + 3)

    def fail(e: BaseException) -> None:
        with lock:
            counts["errors"] += 1
            if len(errors) < 5:
                errors.append("".join(traceback.format_exception(e)))

    def verify(key: KeyInfo, sig: bytes, dgst: bytes) -> None:
        # SHA-256 digest as given; PKCS#1 v1.5 for the RSA key, ECDSA for the EC keys
        verify_signature(pubs[key.key_id], sig, dgst, prehashed=True)

    def signer(n: int) -> None:
        start.wait()
        done = verified = searches = 0
        for i in range(per_thread):
            key = rsa_key if i % 16 == n % 16 else ec_keys[i % 2]
            dgst = hashlib.sha256(b"%d:%d" % (n, i)).digest()
            try:
                sig = tok.sign_digest(key.key_id, dgst)
                done += 1
                if i % 8 == 0:
                    verify(key, sig, dgst)
                    verified += 1
                if i % 50 == 25:
                    if len(tok.keys()) != 3:
                        raise AssertionError("key search returned the wrong number of keys")
                    searches += 1
            except BaseException as e:  # every failure is counted and shown
                fail(e)
        with lock:
            counts["signatures"] += done
            counts["verified"] += verified
            counts["searches"] += searches

    def churner(label: str) -> None:
        other = Hsm(pin_state=os.path.join(state, f"{label}.json")).token(label=label)
        other.login(pin)
        key = other.generate_key("p256", "churn")
        other.logout()
        start.wait()
        for _ in range(60):
            try:
                other.login(pin)
                for _ in range(5):
                    dgst = os.urandom(32)
                    verify_signature(key.public_key_der, other.sign_digest(key.key_id, dgst), dgst, prehashed=True)
                other.logout()
                with lock:
                    counts["logins"] += 1
            except BaseException as e:
                fail(e)

    def reinitializer() -> None:
        start.wait()
        for _ in range(3):
            if stop.wait(0.4):
                return
            try:
                h.module.reinitialize()
                with lock:
                    counts["reinits"] += 1
            except BaseException as e:
                fail(e)

    stop = threading.Event()
    churn = os.environ["STRESS_CHURN_TOKENS"].split(",")
    ts = [threading.Thread(target=signer, args=(n,)) for n in range(threads)]
    ts += [threading.Thread(target=churner, args=(label,)) for label in churn[:2]]
    ts.append(threading.Thread(target=reinitializer))
    for t in ts:
        t.start()
    for t in ts[:-1]:
        t.join()
    stop.set()
    ts[-1].join()
    tok.logout()
    counts["expected"] = threads * per_thread
    print(json.dumps(counts), flush=True)
    for e in errors:
        print(e, file=sys.stderr)
    return 0 if counts["errors"] == 0 and counts["signatures"] == counts["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
