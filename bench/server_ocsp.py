"""OCSP responses/s with the answer cache next to signing every answer, same run, same requests.

Server keys on a SoftHSM token in its own directory (``BENCH_OCSP_FAMILY``: "rsa", the server's default,
gives an RSA-3072 responder key; "ec" a P-256 one), 64 certificates in the store (8 revoked), one request
per certificate with a fresh 16-byte nonce each (as openssl and pyHanko send them), asked round-robin.

* ``sign each``: ``OcspResponder(cache_size=0)``, one HSM signature per answer (what the responder did before);
* ``cached``: the default responder; every answer still parses the request and reads the certificate's
  revocation state from the store (that is what keeps it correct across processes), but signs only on a miss;
* the same two over the real PKI HTTP listener, one keep-alive client connection (the client is Python in
  this process, on the same cores: its CPU time is part of what the HTTP figures pay).

Every variant runs once per round, rounds alternate (BENCH_ROUNDS, default 3), medians with their spread.
Target: cached >= 20x sign each (responder level).
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from .common import Report, alternate, rate
from .hsm_sign import LABEL, PIN, _softhsm

SECONDS = float(os.environ.get("BENCH_SECONDS", "1.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FAMILY = os.environ.get("BENCH_OCSP_FAMILY", "rsa")
CERTS, REVOKED = 64, 8


def _records(store: Any, issuer_key_hash: str, now: Any) -> list[int]:
    """Certificates in the store as the CA records them (OCSP needs the rows, not real certificates)."""
    from server.ca import db

    serials = []
    for _ in range(CERTS):
        serial = int.from_bytes(os.urandom(16), "big") >> 2
        db.insert(store, db.CertRecord(
            issuer_key_hash=issuer_key_hash, serial=serial, origin=db.ORIGIN_ISSUED, subject="CN=bench",
            person_id=None, key_hash=os.urandom(32).hex(), not_before=now, not_after=now + timedelta(days=365),
            status="good", revocation_reason=None, revoked_at=None, der=os.urandom(1200)), now=now)
        serials.append(serial)
    for serial in serials[:REVOKED]:
        db.mark_revoked(store, issuer_key_hash, serial, "key_compromise", now, now)
    return serials


def _requests(issuer: Any, serials: list[int]) -> list[bytes]:
    import hashlib

    from asn1crypto import ocsp

    name_hash = hashlib.sha1(issuer.subject.dump()).digest()  # noqa: S324 - the CertID hash openssl uses
    key_hash = hashlib.sha1(bytes(issuer.public_key["public_key"])).digest()  # noqa: S324
    return [ocsp.OCSPRequest({"tbs_request": {
        "request_list": [{"req_cert": {"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": name_hash,
                                       "issuer_key_hash": key_hash, "serial_number": s}}],
        "request_extensions": [{"extn_id": "nonce", "critical": False, "extn_value": os.urandom(16)}],
    }}).dump() for s in serials]


def _http_client(url_host: str, port: int, requests: list[bytes]) -> tuple[Any, Any]:
    conn = http.client.HTTPConnection(url_host, port, timeout=60)
    cycle = itertools.cycle(requests)

    def ask() -> bytes:
        conn.request("POST", "/ocsp", next(cycle), {"Content-Type": "application/ocsp-request"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return body

    return ask, conn


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-ocsp-"))
    try:
        _softhsm(state)
        from hsm import Hsm
        from server.ca import PkiUrls, Role, db
        from server.ca.ocsp import OcspResponder
        from server.clock import SystemClock
        from server.http import PkiHttpServer, build_services
        from server.keys import KeySetPolicy, init_server_keys, load_server_keys
        from server.store import open_store

        h = Hsm(pin_state=state / "pins.json")
        tok = h.token(label=LABEL)
        tok.login(PIN)
        store = open_store(str(state / "signet.sqlite"))
        clock = SystemClock()
        init_server_keys(tok, store, "Signet Bench", clock, urls=PkiUrls("http://127.0.0.1:7080"),
                         policy=KeySetPolicy(family=FAMILY))
        keys = load_server_keys(tok, store)
        serials = _records(store, db.spki_hash(keys[Role.SIGNING_CA].public_key_der), clock.now())
        requests = _requests(keys[Role.SIGNING_CA].certificate, serials)
        responders = {"sign each": OcspResponder(keys, store, clock, cache_size=0),
                      "cached": OcspResponder(keys, store, clock)}

        listeners = {}
        for name, responder in responders.items():
            services = dataclasses.replace(build_services(keys, store, clock), ocsp=responder)
            srv = PkiHttpServer(("127.0.0.1", 0), services)
            srv.start()
            listeners[name] = srv

        def in_process(name: str) -> float:
            cycle = itertools.cycle(requests)
            return rate(lambda: responders[name].respond(next(cycle)), 1, SECONDS)

        def over_http(name: str) -> float:
            host, port = listeners[name].server_address[:2]
            ask, conn = _http_client(host, port, requests)
            try:
                return rate(ask, 1, SECONDS)
            finally:
                conn.close()

        report = Report("ocsp")
        key_alg = f"{FAMILY} responder key ({'RSA-3072' if FAMILY == 'rsa' else 'P-256'})"
        print(f"OCSP bench: {key_alg}, {CERTS} certificates, {SECONDS} s x {ROUNDS} rounds", flush=True)
        runs = alternate({
            "sign each": lambda: in_process("sign each"),
            "cached": lambda: in_process("cached"),
            "http sign each": lambda: over_http("sign each"),
            "http cached": lambda: over_http("cached"),
        }, ROUNDS)
        report.add(f"{FAMILY} responder, sign each answer", runs["sign each"], "resp/s")
        report.add(f"{FAMILY} responder, cached", runs["cached"], "resp/s",
                   baseline=f"{FAMILY} responder, sign each answer")
        report.add(f"{FAMILY} HTTP, sign each answer", runs["http sign each"], "resp/s")
        report.add(f"{FAMILY} HTTP, cached", runs["http cached"], "resp/s", baseline=f"{FAMILY} HTTP, sign each answer")
        signed = responders["cached"].signatures
        print(f"cached responder signed {signed} answers in all ({len(requests)} distinct requests)", flush=True)
        for srv in listeners.values():
            srv.stop()
        tok.logout()
        store.close()
        report.finish()
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
