"""The OCSP answer cache: byte-for-byte answers, one HSM signature per (request, store state, half-validity),
revocations seen at once by every responder sharing the store, nonces ignored (RFC 5019 style)."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta

from asn1crypto import ocsp


def _responder(pki, store=None, clock=None, **kw):
    from server.ca.ocsp import OcspResponder
    from server.clock import ManualClock

    clock = clock or ManualClock(datetime.now(UTC))
    return OcspResponder(pki.keys, store or pki.store, clock, **kw), clock


def _cert_id(pki, serial, alg="sha1", issuer_role="SIGNING_CA"):
    from server.ca import Role

    issuer = pki.keys[Role[issuer_role]].certificate
    return {"hash_algorithm": {"algorithm": alg},
            "issuer_name_hash": hashlib.new(alg, issuer.subject.dump()).digest(),
            "issuer_key_hash": hashlib.new(alg, bytes(issuer.public_key["public_key"])).digest(),
            "serial_number": serial}


def _request(pki, *cert_ids, nonce=None):
    tbs = {"request_list": [{"req_cert": c} for c in cert_ids]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def _singles(der):
    resp = ocsp.OCSPResponse.load(der)
    assert resp["response_status"].native == "successful"
    return resp, resp.basic_ocsp_response["tbs_response_data"]["responses"]


def _issue(pki, new_key, person):
    return pki.ca.issue(new_key()[1], person, "p-cache").serial


def test_answers_are_cached_byte_for_byte_and_nonces_are_not_echoed(pki, new_key, person):
    r, _ = _responder(pki)
    serial = _issue(pki, new_key, person)
    answers = [r.respond(_request(pki, _cert_id(pki, serial), nonce=n)) for n in (b"\x01" * 16, b"\x02" * 32, None)]
    assert answers[0] == answers[1] == answers[2]
    assert r.signatures == 1
    resp, singles = _singles(answers[0])
    assert resp.nonce_value is None and singles[0]["cert_status"].name == "good"
    # a malformed nonce is still refused (RFC 8954 2.1), though a well-formed one is ignored
    bad = r.respond(_request(pki, _cert_id(pki, serial), nonce=b"\x03" * 33))
    assert ocsp.OCSPResponse.load(bad)["response_status"].native == "malformed_request"
    # so is a nonce that is not an OCTET STRING inside the extension, and any critical extension but the nonce
    integer_nonce = _request(pki, _cert_id(pki, serial), nonce=b"\x05").replace(b"\x04\x03\x04\x01\x05",
                                                                            b"\x04\x03\x02\x01\x05")
    critical = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": _cert_id(pki, serial)}],
                                                 "request_extensions": [{"extn_id": "1.2.3.4", "critical": True,
                                                                         "extn_value": b"\x05\x00"}]}}).dump()
    for der in (integer_nonce, critical):
        assert ocsp.OCSPResponse.load(r.respond(der))["response_status"].native == "malformed_request"
    assert r.signatures == 1


def test_revocation_shows_at_once_in_every_process_sharing_the_store(pki, new_key, person):
    """Two responders with their own store connections and caches stand for two server processes."""
    from tests.conftest import reopen

    stores = [reopen(pki.store) for _ in range(2)]
    try:
        responders = [_responder(pki, store=s)[0] for s in stores]
        serial = _issue(pki, new_key, person)
        req = _request(pki, _cert_id(pki, serial))
        for r in responders:
            assert _singles(r.respond(req))[1][0]["cert_status"].name == "good"
            assert _singles(r.respond(req))[1][0]["cert_status"].name == "good"
            assert r.signatures == 1
        pki.ca.revoke(serial, "key_compromise")  # through the fixture's own store connection
        for r in responders:
            status = _singles(r.respond(req))[1][0]["cert_status"]
            assert status.name == "revoked" and status.chosen["revocation_reason"].native == "key_compromise"
            assert r.signatures == 2
            assert r.respond(req) == r.respond(req) and r.signatures == 2  # the revoked answer is cached in turn
    finally:
        for s in stores:
            s.close()


def test_resigned_at_half_validity_well_before_next_update(pki, new_key, person):
    r, clock = _responder(pki, validity=timedelta(hours=1))
    req = _request(pki, _cert_id(pki, _issue(pki, new_key, person)))
    first = r.respond(req)
    clock.advance(30 * 60 - 1)
    assert r.respond(req) == first and r.signatures == 1
    # the last time it is served it still has more than half its validity left
    assert _singles(first)[1][0]["next_update"].native - clock.now() > timedelta(minutes=30)
    clock.advance(1)
    second = r.respond(req)
    assert second != first and r.signatures == 2
    old, new = (_singles(d)[1][0] for d in (first, second))
    assert new["this_update"].native - old["this_update"].native == timedelta(minutes=30)
    assert new["next_update"].native - new["this_update"].native == timedelta(hours=1)
    clock.advance(-120)  # a clock stepped back: no answer with a thisUpdate in the future
    third = r.respond(req)
    assert _singles(third)[1][0]["this_update"].native <= clock.now() and r.signatures == 3


def test_unknown_serial_is_answered_again_once_issued(pki):
    from server.ca import db

    r, clock = _responder(pki)
    serial = int.from_bytes(os.urandom(15), "big")
    req = _request(pki, _cert_id(pki, serial))
    assert _singles(r.respond(req))[1][0]["cert_status"].name == "unknown"
    assert r.respond(req) and r.signatures == 1
    now = clock.now()
    db.insert(pki.store, db.CertRecord(
        issuer_key_hash=pki.ca.issuer_key_hash, serial=serial, origin=db.ORIGIN_ISSUED, subject="CN=x",
        person_id=None, key_hash=os.urandom(32).hex(), not_before=now, not_after=now + timedelta(days=1),
        status="good", revocation_reason=None, revoked_at=None, der=os.urandom(64)), now=now)
    assert _singles(r.respond(req))[1][0]["cert_status"].name == "good" and r.signatures == 2


def test_each_cert_id_form_and_multi_certificate_request_has_its_own_entry(pki, new_key, person):
    r, _ = _responder(pki)
    a, b = _issue(pki, new_key, person), _issue(pki, new_key, person)
    by_sha1 = r.respond(_request(pki, _cert_id(pki, a)))
    by_sha256 = r.respond(_request(pki, _cert_id(pki, a, "sha256")))
    assert by_sha1 != by_sha256  # each echoes the CertID it was asked with
    assert _singles(by_sha256)[1][0]["cert_id"]["hash_algorithm"]["algorithm"].native == "sha256"
    foreign = _cert_id(pki, a, issuer_role="TLS_CA")
    pair = _request(pki, _cert_id(pki, a), _cert_id(pki, b), foreign)
    names = [s["cert_status"].name for s in _singles(r.respond(pair))[1]]
    assert names == ["good", "good", "unknown"] and r.signatures == 3
    assert r.respond(pair) and r.signatures == 3
    pki.ca.revoke(b, "superseded")
    names = [s["cert_status"].name for s in _singles(r.respond(pair))[1]]
    assert names == ["good", "revoked", "unknown"] and r.signatures == 4
    assert r.respond(_request(pki, _cert_id(pki, a))) == by_sha1  # a's own entry is untouched
    only_foreign = r.respond(_request(pki, foreign))
    assert ocsp.OCSPResponse.load(only_foreign)["response_status"].native == "unauthorized"


def test_concurrent_misses_wait_for_one_signature(pki, new_key, person):
    r, _ = _responder(pki)
    req = _request(pki, _cert_id(pki, _issue(pki, new_key, person)))
    start, out = threading.Barrier(8), []

    def ask():
        start.wait()
        out.append(r.respond(req))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 1 and len(out) == 8 and r.signatures == 1


def test_cache_is_bounded_and_size_zero_signs_every_answer(pki, new_key, person):
    r, _ = _responder(pki, cache_size=2)
    serials = [_issue(pki, new_key, person) for _ in range(3)]
    for s in serials:
        r.respond(_request(pki, _cert_id(pki, s)))
    assert len(r._cache) == 2 and r.signatures == 3
    r.respond(_request(pki, _cert_id(pki, serials[0])))  # the oldest went first
    assert r.signatures == 4
    uncached, _ = _responder(pki, cache_size=0)
    req = _request(pki, _cert_id(pki, serials[1]))
    for _ in range(3):
        uncached.respond(req)
    assert uncached.signatures == 3 and not uncached._cache


def test_a_cert_id_that_is_not_all_der_is_refused_never_echoed(pki, new_key, person):
    """The CertID is echoed into a signed answer: every field must parse, including those the answer does not
    need (an unknown hash algorithm's issuerNameHash), and its encoding must be DER (no long-form lengths)."""
    r, _ = _responder(pki)
    serial = _issue(pki, new_key, person)
    foreign = _cert_id(pki, serial)
    foreign.update(hash_algorithm={"algorithm": "1.2.3.4"}, issuer_name_hash=b"\x77" * 20)
    bad_tag = _request(pki, _cert_id(pki, serial), foreign).replace(b"\x04\x14" + b"\x77" * 20,
                                                                    b"\x14\x14" + b"\x77" * 20)
    good = ocsp.CertId(_cert_id(pki, serial)).dump()
    long_form = ocsp.CertId.load(good.replace(b"\x04\x14", b"\x04\x81\x14", 1)[:1] + bytes([len(good) - 1])
                                 + good.replace(b"\x04\x14", b"\x04\x81\x14", 1)[2:])
    assert long_form.native == ocsp.CertId.load(good).native  # asn1crypto reads it; it is BER, not DER
    not_der = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": long_form}]}}).dump()
    assert long_form.dump() in not_der
    for der in (bad_tag, not_der):
        assert ocsp.OCSPResponse.load(r.respond(der))["response_status"].native == "malformed_request"
    assert r.signatures == 0
    ok = r.respond(_request(pki, _cert_id(pki, serial)))
    assert ocsp.OCSPResponse.load(ok)["response_status"].native == "successful"
