"""Durability: writes acknowledged before `kill -9` of signet-server survive it — a registered person, the evidence of a
confirmed phone and an approval (through the server), a client certificate revocation (through signet-admin)."""

from __future__ import annotations

import signal

import grpc
import pytest

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg

from .server_harness import ServerProcess, admin, channel, prc_id, reason, register_verified, start_running


def test_acknowledged_writes_survive_kill_9(make_token, tmp_path):
    tok = make_token("srv-crash")
    r = start_running(tmp_path / "server", tok.label, tok.pin)
    op = channel(r.env, r.op_a)
    person = register_verified(r, op, "Li Na 李娜", prc_id("19920101", "234"), "+8613700137001", "na@example.com")
    # an acknowledged revocation: operator B's client certificate
    from cryptography import x509

    op_b_serial = x509.load_pem_x509_certificate(r.op_b.cert.read_bytes()).serial_number
    revoked = admin(r.env, "cert", "revoke", f"{op_b_serial:x}", "--reason", "key_compromise")
    assert revoked["revoked_at"]

    r.server.proc.send_signal(signal.SIGKILL)
    r.server.proc.wait()
    assert r.server.proc.returncode == -signal.SIGKILL

    server = ServerProcess(r.env)  # restarts on the same store and token
    try:
        ids = pbg.IdentityServiceStub(channel(r.env, r.op_a))
        got = ids.GetPerson(pb.GetPersonRequest(person_id=person), timeout=30).person
        assert got.status == pb.PERSON_STATUS_APPROVED and got.HasField("phone_verified_at")
        kinds = [e.kind for e in ids.ListEvidence(pb.ListEvidenceRequest(person_id=person), timeout=30).records]
        assert kinds == ["registered", "phone_code_sent", "phone_verified", "approved"]
        with pytest.raises(grpc.RpcError) as ei:
            pbg.IdentityServiceStub(channel(r.env, r.op_b)).ListPeople(pb.ListPeopleRequest(), timeout=30)
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED and reason(ei.value) == "CLIENT_CERT_REVOKED"
    finally:
        server.stop()
