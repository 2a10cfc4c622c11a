"""The PKI listener under abuse: slow clients, too many connections, busy workers, request floods.

Real sockets on 127.0.0.x (Linux routes all of 127/8 to loopback, so a test can be many client addresses) and
the real services of the ``pki`` fixture behind a fresh listener.  Deadlines run on an injected monotonic clock
where the test must be exact (nothing is cut before the test moves the clock); one test uses the real clock to
show that dribbling bytes does not stretch the deadline.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import threading
import time
import urllib.request

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp, tsp

from tests.conftest import USER_PIN

from .conftest import openssl, write_pem
from .test_tsa import _query


class Monotonic:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _until(cond, what, limit=60.0):
    """Wait for ``cond()`` (a liveness bound, not a timing assertion)."""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.fixture
def listener(pki):
    from server.http import PkiHttpServer

    made = []

    def make(services=None, **kw):
        srv = PkiHttpServer(("127.0.0.1", 0), services or pki.http.services, **kw)
        srv.start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
def ocsp_request(pki, new_key, person, tmp_path):
    leaf = write_pem(tmp_path / "leaf.pem", pki.ca.issue(new_key()[1], person, "p-abuse").der)
    req = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(pki.files / "signing-ca.pem"), "-cert", str(leaf), "-reqout", str(req))
    return req.read_bytes()


def _connect(srv, source="127.0.0.1"):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(srv.server_address[:2])
    return s


def _request(srv, method, path, body=None, ctype=None, source="127.0.0.1"):
    """(status, headers, body) over a fresh connection from ``source``."""
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def _read_all(s):
    s.settimeout(60)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def _nothing_received(s):
    try:
        s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except BlockingIOError:
        return True
    return False


def _read_response(s):
    """One response with a Content-Length, read exactly (the connection stays usable)."""
    s.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(v for k, _, v in (line.partition(b": ") for line in head.split(b"\r\n"))
                      if k.lower() == b"content-length"))
    while len(body) < length:
        body += s.recv(65536)
    return head, body


def _normal_client_is_served(srv, ocsp_req):
    status, headers, body = _request(srv, "POST", "/ocsp", ocsp_req, "application/ocsp-request")
    assert status == 200 and headers["Content-Type"] == "application/ocsp-response"
    single = ocsp.OCSPResponse.load(body).basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert single["cert_status"].name == "good"
    status, headers, body = _request(srv, "GET", "/crl/signing-ca.crl")
    assert status == 200 and asn1_crl.CertificateList.load(body)["tbs_cert_list"]["version"].native == "v2"
    status, headers, body = _request(srv, "POST", "/tsa", _query(nonce=5), "application/timestamp-query")
    assert status == 200 and tsp.TimeStampResp.load(body)["status"]["status"].native == "granted"


@pytest.mark.parametrize("sources", ["one address", "64 addresses"])
def test_64_slow_clients_do_not_stop_ocsp_crl_and_tsa(listener, ocsp_request, sources):
    clock = Monotonic()
    srv = listener(request_deadline=10.0, clock=clock)
    addresses = ["127.0.0.9"] * 64 if sources == "one address" else [f"127.0.1.{i}" for i in range(1, 65)]
    slow = [_connect(srv, a) for a in addresses]
    held = srv.max_per_client if sources == "one address" else 64
    _until(lambda: srv.stats()["accepted"] == 64, "64 connections accepted")
    _until(lambda: srv.stats()["read"] == held, f"{held} slow connections waiting for their request")
    assert srv.stats()["refused_client"] == 64 - held
    # each slow client sends a (valid) OCSP POST one byte per second
    request = (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
               b"Content-Length: %d\r\n\r\n" % len(ocsp_request) + ocsp_request)
    stop, sent = threading.Event(), [0]

    def dribble():
        while not stop.is_set() and sent[0] < len(request):
            for s in slow:
                try:
                    s.send(request[sent[0]:sent[0] + 1])
                except OSError:
                    pass  # one of those refused at once
            sent[0] += 1
            stop.wait(1.0)

    dribbler = threading.Thread(target=dribble)
    dribbler.start()
    try:
        _until(lambda: sent[0] >= 2, "two bytes dribbled")
        _normal_client_is_served(srv, ocsp_request)
        # the slow ones were still there, unanswered, holding no worker (the normal client's own last
        # connection may still be closing: wait for that, the frozen clock cuts nothing meanwhile)
        _until(lambda: srv.stats()["open"] == len(slow) and srv.stats()["read"] == held, "the normal client gone")
        stats = srv.stats()
        assert stats["read"] == held and stats["in_flight"] == 0 and stats["timed_out"] == 0
        held_socks = [s for s in slow if _nothing_received(s)]
        assert len(held_socks) == held
        for s in slow:
            if s not in held_socks:  # refused at accept: 503, Retry-After, closed
                answer = _read_all(s)
                assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1\r\n" in answer
                assert b"too many connections from this address" in answer
        # just before the deadline nothing is cut, however many bytes arrived
        clock.advance(9.5)
        time.sleep(0.3)  # a few sweeps of the selector thread
        assert srv.stats()["read"] == held and all(_nothing_received(s) for s in held_socks)
        clock.advance(0.6)
        for s in held_socks:
            answer = _read_all(s)  # 408, then the server closes: EOF
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:100]
            assert b"Connection: close" in answer
        assert srv.stats()["timed_out"] == held
        assert sent[0] < len(request)  # none of them ever finished its request
    finally:
        stop.set()
        dribbler.join()
        for s in slow:
            s.close()
    _until(lambda: srv.stats()["open"] == 0, "every connection closed")


def test_dribbling_does_not_stretch_the_deadline_on_the_real_clock(listener):
    """One byte every 0.2 s: a per-read timeout would never fire; the request deadline (1 s) does."""
    srv = listener(request_deadline=1.0)
    s = _connect(srv)
    request = b"GET /crl/signing-ca.crl HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 500 + b"\r\n\r\n"
    sent = 0
    try:
        while _nothing_received(s) and sent < len(request):
            s.send(request[sent:sent + 1])
            sent += 1
            time.sleep(0.2)
        answer = _read_all(s)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert sent < len(request) and srv.stats()["timed_out"] == 1


def test_connections_per_address_are_capped(listener):
    srv = listener(max_per_client=2, clock=Monotonic())
    idle = [_connect(srv, "127.0.0.20") for _ in range(2)]
    _until(lambda: srv.stats()["read"] == 2, "two idle connections")
    status, headers, body = _request(srv, "GET", "/", source="127.0.0.20")
    assert status == 503 and headers["Retry-After"] == "1" and headers["Connection"] == "close"
    assert body == b"too many connections from this address; retry later\n"
    assert _request(srv, "GET", "/", source="127.0.0.21")[0] == 200  # other addresses are not affected
    idle[0].close()
    _until(lambda: srv.stats()["open"] == 1, "the closed connection is gone")
    assert _request(srv, "GET", "/", source="127.0.0.20")[0] == 200
    idle[1].close()


def test_open_connections_are_capped_with_503_not_a_queue(listener):
    srv = listener(max_open=4, clock=Monotonic())
    idle = [_connect(srv, f"127.0.2.{i}") for i in range(1, 5)]
    _until(lambda: srv.stats()["read"] == 4, "four idle connections")
    status, headers, body = _request(srv, "GET", "/", source="127.0.2.9")
    assert status == 503 and headers["Retry-After"] == "1" and body == b"the server is busy; retry later\n"
    assert srv.stats()["refused_busy"] == 1
    idle.pop().close()
    _until(lambda: srv.stats()["open"] == 3, "a slot is free again")
    assert _request(srv, "GET", "/", source="127.0.2.9")[0] == 200
    for s in idle:
        s.close()


def test_busy_workers_refuse_rather_than_queue_without_bound(pki, listener, ocsp_request):
    """One worker, one request waiting for it: the third complete request is answered 503 at once."""
    from server.ca.ocsp import OcspResponder
    from server.clock import SystemClock

    gate, entered = threading.Event(), threading.Semaphore(0)

    class GatedResponder(OcspResponder):
        def respond(self, request_der):
            entered.release()
            gate.wait(60)
            return super().respond(request_der)

    gated = dataclasses.replace(pki.http.services, ocsp=GatedResponder(pki.keys, pki.store, SystemClock()))
    srv = listener(gated, max_connections=1, clock=Monotonic())
    results = []

    def post(source):
        results.append(_request(srv, "POST", "/ocsp", ocsp_request, "application/ocsp-request", source=source)[0])

    first = threading.Thread(target=post, args=("127.0.0.41",))
    first.start()
    assert entered.acquire(timeout=60)  # the worker is inside the responder
    second = threading.Thread(target=post, args=("127.0.0.42",))
    second.start()
    _until(lambda: srv.stats()["in_flight"] == 2, "one request running, one waiting")
    status, _, body = _request(srv, "GET", "/", source="127.0.0.43")
    assert status == 503 and body == b"the server is busy; retry later\n"
    gate.set()
    first.join()
    second.join()
    assert results == [200, 200]
    assert _request(srv, "GET", "/", source="127.0.0.43")[0] == 200


def test_rate_limit_per_address_429_then_served_after_the_window(listener):
    clock = Monotonic()
    srv = listener(rate_per_minute=3, clock=clock)
    assert [_request(srv, "GET", "/")[0] for _ in range(3)] == [200, 200, 200]
    status, headers, body = _request(srv, "GET", "/")
    assert status == 429 and headers["Retry-After"] == "60" and headers["Connection"] == "close"
    assert body.startswith(b"too many requests from this client")
    assert _request(srv, "GET", "/", source="127.0.0.50")[0] == 200  # per address
    clock.advance(30)
    status, headers, _ = _request(srv, "GET", "/")
    assert status == 429 and headers["Retry-After"] == "30"
    clock.advance(30)
    assert _request(srv, "GET", "/")[0] == 200
    assert srv.stats()["rate_limited"] == 2


def test_rate_limit_from_config_reaches_the_listener(listener, monkeypatch, tmp_path):
    """[http] settings as cmd_run passes them (server/main.py)."""
    from server.config import ServerConfig

    monkeypatch.setenv("SIGNET_TEST_PIN", USER_PIN)
    cfg = ServerConfig.parse({"server": {"mode": "demo"}, "hsm": {"pin_env": "SIGNET_TEST_PIN"},
                              "http": {"rate_per_minute": 1, "request_deadline_seconds": 2.5,
                                       "max_connections": 3}}, tmp_path / "server.toml")
    srv = listener(max_connections=cfg.http.max_connections, request_deadline=cfg.http.request_deadline_seconds,
                   rate_per_minute=cfg.http.rate_per_minute, clock=Monotonic())
    assert (srv.max_connections, srv.request_deadline) == (3, 2.5)
    assert [_request(srv, "GET", "/")[0] for _ in range(2)] == [200, 429]


def test_keep_alive_pipelining_and_expect_continue(listener, ocsp_request):
    srv = listener(clock=Monotonic())
    # two requests in one write: two answers, in order, on one connection
    s = _connect(srv)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /ca/tsa.crt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = _read_all(s)
    s.close()
    first, _, rest = answer.partition(b"HTTP/1.1 200 OK\r\n")[2].partition(b"HTTP/1.1 200 OK\r\n")
    assert b"text/plain" in first and b"application/pkix-cert" in rest
    # a client that waits for "100 Continue" before its body gets it
    s = _connect(srv)
    s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nExpect: 100-continue\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(ocsp_request))
    s.settimeout(60)
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(ocsp_request)
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"application/ocsp-response" in answer
    # http.client keeps its connection for several requests
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    for _ in range(3):
        conn.request("POST", "/ocsp", ocsp_request, {"Content-Type": "application/ocsp-request"})
        resp = conn.getresponse()
        assert resp.status == 200 and ocsp.OCSPResponse.load(resp.read())["response_status"].native == "successful"
    conn.close()
    assert srv.stats()["accepted"] == 3


def test_idle_keep_alive_is_closed_quietly_after_the_deadline(listener):
    clock = Monotonic()
    srv = listener(request_deadline=5.0, clock=clock)
    s = _connect(srv)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = _read_response(s)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    _until(lambda: srv.stats()["read"] == 1, "the connection waits for its next request")
    clock.advance(5.1)
    assert _read_all(s) == b""  # closed, without an unsolicited 408
    s.close()
    assert srv.stats()["timed_out"] == 0


def test_root_lists_every_path(pki):
    with urllib.request.urlopen(f"{pki.url}/", timeout=30) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        lines = resp.read().decode().splitlines()
    paths = [line.split()[0] for line in lines]
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # a path, then a description
    assert paths[:4] == ["/", "/ocsp", "/ocsp/<base64", "/tsa"]
    for ca in ("signing-root", "signing-ca", "tls-root", "tls-ca"):
        assert f"/crl/{ca}.crl" in paths
    for name in ("signing-root", "signing-ca", "tls-root", "tls-ca", "ocsp", "tsa", "seal", "audit"):
        assert f"/ca/{name}.crt" in paths
    for path in paths:  # every listed fetchable path answers
        if path.startswith(("/crl/", "/ca/")):
            with urllib.request.urlopen(f"{pki.url}{path}", timeout=30) as resp:
                assert resp.status == 200
