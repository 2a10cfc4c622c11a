"""The SMS gateway (a webhook) down, then back: a running signet-server reports the failed delivery clearly
(UNAVAILABLE, WEBHOOK_UNREACHABLE), the code it could not deliver can never be used, nothing is left half done,
and the next request after the gateway recovers goes through at once."""

from __future__ import annotations

import re
import threading
import time

import grpc
import pytest

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg
from signet.wire import reason_of
from tests.e2e.server_harness import channel, prc_id, start_running
from tests.server_helpers import Received, http_receiver

pytestmark = pytest.mark.e2e

SECRET_ENV = "SIGNET_TEST_WEBHOOK_SECRET"
PHONE = "+8613900139001"


def test_sms_gateway_down_then_back(make_token, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "w" * 40)
    up = threading.Event()

    def gateway(req: Received, index: int) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, b"{}") if up.is_set() else (503, {}, b"down")

    with http_receiver(gateway) as sms:
        tok = make_token("notify")
        extra = (f'[notify]\ndefault = "outbox"\nphone = "webhook"\n[notify.webhook]\nurl = "{sms.url}"\n'
                 f'secret_env = "{SECRET_ENV}"\nallow_http = true\n')
        r = start_running(tmp_path / "srv", tok.label, tok.pin, extra)
        try:
            with channel(r.env, r.op_a) as ch:
                ids = pbg.IdentityServiceStub(ch)
                person = ids.RegisterPerson(pb.RegisterPersonRequest(
                    legal_name="Mei Sun", document_type="prc_resident_id", document_number=prc_id("19900315", "218"),
                    phone=PHONE, email="mei@example.com"), timeout=30).person

                with pytest.raises(grpc.RpcError) as down:
                    ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=person.id), timeout=120)
                assert down.value.code() == grpc.StatusCode.UNAVAILABLE
                assert reason_of(down.value) == "WEBHOOK_UNREACHABLE"
                assert len(sms.requests) >= 2  # retried with back-off before giving up
                undelivered = re.search(rb"\b(\d{6})\b", sms.requests[-1].body)
                assert undelivered, "the gateway saw the message it refused"

                up.set()  # the gateway recovers
                t0 = time.monotonic()
                challenge = ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=person.id),
                                                       timeout=30).challenge
                recovered_in = time.monotonic() - t0
                delivered = re.search(rb"\b(\d{6})\b", sms.requests[-1].body)
                assert delivered and delivered.group(1) != undelivered.group(1)

                # the code that never reached the person is dead, even with the new challenge open
                with pytest.raises(grpc.RpcError) as refused:
                    ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=person.id,
                                                            code=undelivered.group(1).decode(),
                                                            code_id=challenge.code_id), timeout=30)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                done = ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=person.id, code=delivered.group(1).decode(),
                                                               code_id=challenge.code_id), timeout=30).person
                assert done.phone_verified_at.seconds > 0
                kinds = [e.kind for e in ids.ListEvidence(pb.ListEvidenceRequest(person_id=person.id),
                                                          timeout=30).records]
                assert kinds == ["registered", "phone_code_sent", "phone_verified"]  # the failure left no record
        finally:
            r.server.stop()
    assert recovered_in < 2.0, f"the first request after the gateway came back took {recovered_in:.1f} s"
    assert "WEBHOOK_UNREACHABLE" in r.server.log or "webhook" in r.server.log.lower()
    assert "w" * 40 not in r.server.log  # the webhook secret never reaches the log, nor any code
    assert undelivered.group(1).decode() not in r.server.log and delivered.group(1).decode() not in r.server.log
