"""TSA serial numbers are recorded in the store, unique (a collision draws again), and the accuracy comes from
the [tsa] configuration."""

from __future__ import annotations

import logging

from asn1crypto import tsp

from tests.conftest import USER_PIN, reopen

from .conftest import openssl
from .test_tsa import _query, _StatusOnly


def _tst(resp_der):
    resp = tsp.TimeStampResp.load(resp_der)
    assert resp["status"]["status"].native == "granted"
    return resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed


def test_every_serial_is_recorded_with_its_imprint(pki):
    from server import tsa_log

    before = tsa_log.count(pki.store)
    serials = set()
    for i in range(3):
        digest = bytes([i]) * 32
        tst = _tst(pki.http.services.tsa.respond(_query(
            message_imprint={"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest})))
        rec = tsa_log.find(pki.store, tst["serial_number"].native)
        assert rec is not None and rec.message_imprint == digest and rec.hash_algorithm == "sha256"
        assert rec.gen_time == tst["gen_time"].native and rec.policy == tst["policy"].native
        serials.add(rec.serial)
    assert len(serials) == 3 and tsa_log.count(pki.store) == before + 3


def test_a_serial_drawn_before_is_drawn_again_even_by_another_process(pki, caplog):
    """Two TSAs with their own store connections stand for two server processes; their RNGs collide."""
    from server.clock import SystemClock
    from server.tsa import TimeStampAuthority

    same = b"\x5a" * 16
    other = reopen(pki.store)
    try:
        first = TimeStampAuthority(pki.keys, SystemClock(), store=pki.store, rng=lambda n: same)
        draws = iter([same, b"\x6b" * 16])
        second = TimeStampAuthority(pki.keys, SystemClock(), store=other, rng=lambda n: next(draws))
        a = _tst(first.respond(_query()))["serial_number"].native
        with caplog.at_level(logging.WARNING, logger="server.tsa"):
            b = _tst(second.respond(_query()))["serial_number"].native
        assert a != b and a.to_bytes(16, "big")[1:] == same[1:] and b.to_bytes(16, "big")[1:] == b"\x6b" * 15
        assert any("was drawn before; drawing another" in r.getMessage() for r in caplog.records)
        # an RNG that keeps repeating itself is a system failure, not a duplicate token
        stuck = TimeStampAuthority(pki.keys, SystemClock(), store=pki.store, rng=lambda n: same)
        resp = _StatusOnly.load(stuck.respond(_query()))
        assert resp["status"]["fail_info"].native == {"system_failure"}
    finally:
        other.close()


def test_accuracy_comes_from_the_tsa_configuration(pki, monkeypatch, tmp_path):
    from server.clock import SystemClock
    from server.config import ServerConfig
    from server.http import build_services
    from server.runtime import tsa_policy

    monkeypatch.setenv("SIGNET_TEST_PIN", USER_PIN)
    cfg = ServerConfig.parse({"server": {"mode": "demo"}, "hsm": {"pin_env": "SIGNET_TEST_PIN"},
                              "tsa": {"accuracy_seconds": 7}}, tmp_path / "server.toml")
    services = build_services(pki.keys, pki.store, SystemClock(), tsa_policy=tsa_policy(cfg))  # as cmd_run does
    body = services.tsa.respond(_query(nonce=9, cert_req=True))
    assert _tst(body)["accuracy"]["seconds"].native == 7
    (tmp_path / "r.tsr").write_bytes(body)
    assert "Accuracy: 0x07 seconds" in openssl("ts", "-reply", "-in", str(tmp_path / "r.tsr"), "-text").stdout
