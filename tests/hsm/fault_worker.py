"""Child process for test_faults.py: the hsm layer on SoftHSM behind the faultp11 shim, driven over stdin/stdout.

One process per test module: the shim dlopens the same SoftHSM the test process has loaded, and two Module
objects over one SoftHSM in one process would finalise each other's sessions.  The test process writes the
faultp11 rules file; this process only runs hsm operations and reports what they answered.

Protocol: one JSON object per line each way.  Request ``{"op": NAME, ...}``; reply ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": class name, "hsm": is an HsmError, "pkcs11": is a python-pkcs11 error, "cause": ...,
"message": ...}``, plus ``"seconds"`` (how long the operation took).
Environment: SOFTHSM2_CONF, FAULTP11_MODULE, FAULTP11_CONTROL, FAULT_SHIM (the shim's path), FAULT_TOKEN, FAULT_PIN.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from hsm import Hsm, HsmError, Token
from tests.faultp11 import counters
from tests.hsm.probes import open_sessions

DGST = hashlib.sha256(b"fault injection").digest()
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _issue(csr_der: bytes) -> tuple[bytes, bytes]:
    """(leaf, CA) certificates for a token CSR, from a throwaway software CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fault CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    req = x509.load_der_x509_csr(csr_der)
    leaf = (x509.CertificateBuilder().subject_name(req.subject).issuer_name(ca_name).public_key(req.public_key())
            .serial_number(2).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256()))
    der = serialization.Encoding.DER
    return leaf.public_bytes(der), ca.public_bytes(der)


class Worker:
    def __init__(self) -> None:
        self.shim = os.environ["FAULT_SHIM"]
        self.pin = os.environ["FAULT_PIN"]
        self.hsm = Hsm(self.shim, pin_state=os.path.join(tempfile.mkdtemp(prefix="fault-pins-"), "pins.json"))
        self.tok: Token = self.hsm.token(label=os.environ["FAULT_TOKEN"])
        self.slot = self.tok.info().slot_id
        self.tok.login(self.pin)
        self.key = self.tok.generate_key("p256", "fault-ec")
        pub = serialization.load_der_public_key(self.key.public_key_der)
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        self.pub = pub
        self.cert, self.ca = _issue(self.tok.create_csr(self.key.key_id, {"common_name": "Fault Signer"}))
        self.tok.import_certificate(self.key.key_id, self.cert, chain=[self.ca])
        self.tok.generate_kek("fault-kek")
        self.data_key = os.urandom(32)
        self.wrapped = self.tok.wrap_key("fault-kek", self.data_key)
        self.labels = itertools.count(1)
        self.ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "list_tokens": lambda _: sorted(t.serial for t in self.hsm.tokens()),
            "find_token": lambda _: self.hsm.token(label=os.environ["FAULT_TOKEN"]).serial,
            "info": lambda _: self.tok.info().serial,
            "login": lambda req: self.tok.login(req.get("pin", self.pin)),
            "logout": lambda _: self.tok.logout(),
            "keys": lambda _: [k.key_id for k in self.tok.keys()],
            "key": lambda _: self.tok.key(self.key.key_id).key_id,
            "sign": lambda _: self._sign(),
            "generate_key": lambda _: self.tok.generate_key("p256", f"gen-{next(self.labels)}").key_id,
            "generate_kek": lambda _: self.tok.generate_kek(f"kek-{next(self.labels)}"),
            "delete_key": lambda _: self._delete_key(),
            "import_certificate": lambda _: self._import_certificate(),
            "wrap": lambda _: self.tok.wrap_key("fault-kek", self.data_key) == self.wrapped,
            "unwrap": lambda _: self.tok.unwrap_key(self.wrapped) == self.data_key,
            "close_idle": lambda _: self.tok.pool.close_idle(),
            "state": lambda _: self._state(),
            "counters": lambda req: counters(self.shim, req["function"]),
            "concurrent": self._concurrent,
        }

    def _sign(self) -> bool:
        sig = self.tok.sign_digest(self.key.key_id, DGST)
        self.pub.verify(sig, DGST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        return True

    def _delete_key(self) -> str:
        victim = self.tok.generate_key("p256", f"victim-{next(self.labels)}")
        self.tok.delete_key(victim.key_id)
        return victim.key_id

    def _import_certificate(self) -> bool:
        self.tok.import_certificate(self.key.key_id, self.cert, chain=[self.ca])
        return self.tok.certificate(self.key.key_id) == self.cert

    def _state(self) -> dict[str, Any]:
        """What the pool holds and what the module has open on the token's slot (session handles)."""
        pool = self.tok.pool
        held = [s.session.handle for s in ([pool._anchor] if pool._anchor else []) + pool._idle]
        return {
            "logged_in": self.tok.logged_in,
            "pool": sorted(held),
            "unclosed": sorted(s.session.handle for s in pool._unclosed),
            "module": sorted(open_sessions(self.hsm.module, self.slot)),
            "tries_left": self.tok.pin_tries_left(),
        }

    def _concurrent(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run ``slow`` on a thread and, once it is inside the module, ``fast`` here: (seconds, outcome) of each."""
        slow_out: dict[str, Any] = {}

        def slow() -> None:
            slow_out.update(self.run({"op": req["slow"]}))
            slow_out["ended"] = time.monotonic()

        th = threading.Thread(target=slow)
        th.start()
        time.sleep(req.get("head_start", 0.05))
        fast = self.run({"op": req["fast"]})
        fast["ended"] = time.monotonic()
        th.join()
        return {"slow": slow_out, "fast": fast, "fast_first": fast["ended"] < slow_out["ended"]}

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        start = time.monotonic()
        try:
            result = self.ops[req["op"]](req)
        except BaseException as e:  # reported to the test, which decides
            cause = e.__cause__
            return {"ok": False, "error": type(e).__name__, "hsm": isinstance(e, HsmError),
                    "pkcs11": isinstance(e, pkcs11.PKCS11Error), "message": str(e),
                    "cause": None if cause is None else type(cause).__name__,
                    "seconds": time.monotonic() - start}
        return {"ok": True, "result": result, "seconds": time.monotonic() - start}


def main() -> int:
    try:
        worker = Worker()
    except BaseException as e:  # the test shows why the worker could not start
        print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}), flush=True)
        raise
    print(json.dumps({"ok": True, "result": "ready"}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "exit":
            break
        print(json.dumps(worker.run(req)), flush=True)
    worker.tok.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
