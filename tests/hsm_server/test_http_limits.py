"""The PKI listener refuses what it should, with a status and one line, never a stack trace."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import USER_PIN


def _raw(pki, request: bytes) -> tuple[int, bytes]:
    host, port = pki.http.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    (b"GET /crl/elsewhere.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    (b"GET /ca/../../etc/passwd.crt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    (b"GET /ocsp/!!notbase64!! HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    (b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nConnection: close\r\n\r\n", 411),
    (b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", 415),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 999999\r\n\r\n",
     413),
    (b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    (b"DELETE /crl/signing-ca.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 501),
    (b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nContent-Length: 2\r\n"
     b"Content-Length: 3\r\n\r\nhi!", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70000, 431),
])
def test_refusals(pki, request_bytes, status):
    got, body = _raw(pki, request_bytes)
    assert got == status
    assert b"Traceback" not in body and b"File \"" not in body and len(body) < 1024


def test_failures_on_our_side_are_protocol_errors_without_detail(pki, tmp_path, caplog):
    """With the server token logged out nothing can be signed: OCSP says internalError, the TSA systemFailure."""
    from asn1crypto import ocsp

    from .conftest import openssl
    from .test_tsa import _query, _StatusOnly

    req = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(pki.files / "signing-ca.pem"), "-serial", "0x42", "-reqout", str(req))
    ocsp_req = req.read_bytes()
    tsq = _query()
    pki.token.logout()
    try:
        status, body = _raw(pki, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(ocsp_req) + ocsp_req)
        assert status == 200 and ocsp.OCSPResponse.load(body)["response_status"].native == "internal_error"
        status, body = _raw(pki, b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
                            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(tsq) + tsq)
        resp = _StatusOnly.load(body)
        assert resp["status"]["fail_info"].native == {"system_failure"}
        assert resp["status"]["status_string"].native == ["the time-stamp authority is unavailable"]
    finally:
        pki.token.login(USER_PIN)
    assert any(r.getMessage() == "OCSP responder failed" for r in caplog.records)
