"""Two `signet-server` replicas on one PostgreSQL database, sharing the server token and the state directory
(TLS material, wrapped data keys, the archive): the operations of one envelope are split across both at once.

Carol sends each envelope to herself and Dave (one parallel group, both signing remotely with keys on the server
token); Carol signs through replica A while Dave signs through replica B at the same moment.  Some envelopes
are voided by Carol on A while Dave declines on B.  Then replica A -- the one running the background work -- is
killed (SIGKILL) in the middle of the load; B goes on alone, takes the background work over, and A comes back.

Afterwards: every acknowledged signature is there, every envelope ended in exactly one state with exactly one
final event, no event twice, every "your turn" notice delivered once, each completed envelope sealed exactly
once, and the audit log verifies.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from formats.samplepdf import make_contract_pdf
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg
from signet.wire import reason_of

from .server_harness import (
    ClientFiles,
    Running,
    ServerEnv,
    ServerProcess,
    admin,
    channel,
    latest_code,
    prc_id,
    register_verified,
    start_running,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PEOPLE = {"carol": ("19850615", "123", "+8613700137011"), "dave": ("19790101", "456", "+8613700137012")}
LEADS = "now runs the background work"
RETRYABLE = {"REVISION_CHANGED", "ENVELOPE_CHANGED", "OTP_NOT_FOUND", "OTP_INCORRECT"}


@dataclass
class Replicas:
    r: Running  # replica A (initialised the state; signet-admin runs with its configuration)
    a: ServerProcess
    b: ServerProcess
    b_env: ServerEnv
    files: dict[str, ClientFiles]
    ids: dict[str, str]
    base: Path
    code_locks: dict[str, threading.Lock] = field(default_factory=lambda: {n: threading.Lock() for n in PEOPLE})

    def env_of(self, replica: str) -> ServerEnv:
        return self.r.env if replica == "a" else self.b_env

    def call(self, who: str, replica: str, method: str, request: Any) -> Any:
        """One call; UNAVAILABLE (a replica whose database pool was full: STORE_BUSY) is retried as a client
        should, with the same request (its idempotency key); INTERNAL fails with the replicas' log tails."""
        for attempt in range(5):
            try:
                with channel(self.env_of(replica), self.files[who]) as ch:
                    return getattr(pbg.EnvelopeServiceStub(ch), method)(request, timeout=90)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and attempt < 4:
                    time.sleep(1 + attempt)
                    continue
                if e.code() == grpc.StatusCode.INTERNAL:
                    raise AssertionError(f"{method} on replica {replica}: INTERNAL\n--- a ---\n{self.a.log[-6000:]}"
                                         f"\n--- b ---\n{self.b.log[-6000:]}") from e
                raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def replicas(make_token, pg_cluster, tmp_path_factory) -> Iterator[Replicas]:
    base = tmp_path_factory.mktemp("replicas")
    tok = make_token("replicas")
    store = f'store = "{pg_cluster.createdb("replicas")}"'
    r = start_running(base / "a", tok.label, tok.pin, server_settings=store)
    # replica B: its own listeners, the same token, database and state directory (a shared mount in production)
    (base / "b").mkdir()
    (base / "b" / "state").symlink_to(r.env.state)
    b_env = write_config(base / "b", tok.label, tok.pin, server_settings=store)
    b = None
    try:
        b = ServerProcess(b_env)
        with channel(r.env, r.op_a) as op:
            ids = {n: register_verified(r, op, f"{n.title()} Replica", prc_id(birth, seq), phone, f"{n}@example.com")
                   for n, (birth, seq, phone) in PEOPLE.items()}
        files = {}
        for n in PEOPLE:
            admin(r.env, "remote-key", "create", ids[n], "--evidence", "ID card seen", "--out", str(base / n))
            files[n] = ClientFiles(base / n / "client.crt", base / n / "client.key", base / n / "ca.pem")
        yield Replicas(r, r.server, b, b_env, files, ids, base)
    finally:
        for p in (r.server, b):
            if p is not None:
                p.kill()


def _pdf(w: Replicas, title: str) -> bytes:
    path = w.base / f"{hashlib.sha256(title.encode()).hexdigest()[:10]}.pdf"
    if not path.exists():  # the same bytes for a retried request
        make_contract_pdf(path, title, ["Carol Replica", "Dave Replica"], pages=1)
    return path.read_bytes()


def _send(w: Replicas, replica: str, title: str) -> pb.Envelope:
    field_ = pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)
    specs = [pb.RecipientSpec(person_id=w.ids[n], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
                              signing_method=pb.SIGNING_METHOD_REMOTE, field=field_) for n in PEOPLE]
    draft = w.call("carol", replica, "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title, recipients=specs,
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=_pdf(w, title))])).envelope
    return w.call("carol", replica, "SendEnvelope", pb.SendEnvelopeRequest(
        envelope_id=draft.id, idempotency_key=f"send {title}")).envelope


def _sign(w: Replicas, who: str, replica: str, envelope_id: str) -> str:
    """Sign the envelope's document remotely through ``replica``; starts again when the other signer's
    signature changed the revision meanwhile.  Returns "signed" or the reason it cannot sign."""
    for _ in range(8):
        env = w.call(who, replica, "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
        doc = env.documents[0]
        try:
            with w.code_locks[who]:  # the newest code to the phone is this request's
                challenge = w.call(who, replica, "StartSigning", pb.StartSigningRequest(
                    envelope_id=envelope_id, document_id=doc.id, revision_sha256=doc.current_sha256)).challenge
                code = latest_code(w.r.env, PEOPLE[who][2])
            w.call(who, replica, "SignRemotely", pb.SignRemotelyRequest(
                envelope_id=envelope_id, document_id=doc.id, revision_sha256=doc.current_sha256,
                code_id=challenge.code_id, one_time_code=code))
            return "signed"
        except grpc.RpcError as e:
            why = reason_of(e) or e.code().name
            if why not in RETRYABLE:
                return why
    return "gave up"


def _race(*calls: Callable[[], Any]) -> list[Any]:
    start = threading.Barrier(len(calls))

    def go(f: Callable[[], Any]) -> Any:
        start.wait(30)
        try:
            return f()
        except grpc.RpcError as e:
            return reason_of(e) or e.code().name

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def _events(w: Replicas, envelope_id: str) -> list[pb.EnvelopeEvent]:
    return list(w.call("carol", "b", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(
        envelope_id=envelope_id)).events)


def test_two_replicas_share_the_load_survive_a_kill_and_act_once(replicas: Replicas) -> None:
    w = replicas
    assert LEADS in w.a.log and LEADS not in w.b.log  # one process runs the background work
    signed: dict[str, set[str]] = {}  # envelope -> who was acknowledged as having signed
    ended: dict[str, Any] = {}  # envelope -> the state its racing calls left

    def both_sign(n: int, replicas_: tuple[str, str]) -> None:
        env = _send(w, replicas_[n % 2], f"Replica lease {n}")
        # a retried create reaching the other replica answers the first envelope: idempotency keys hold across
        again = _send(w, replicas_[(n + 1) % 2], f"Replica lease {n}")
        assert again.id == env.id, (env.id, again.id)
        got = _race(lambda: _sign(w, "carol", replicas_[0], env.id), lambda: _sign(w, "dave", replicas_[1], env.id))
        assert got == ["signed", "signed"], (env.id, got)
        signed[env.id] = {"carol", "dave"}

    def void_or_decline(n: int) -> None:
        env = _send(w, "a", f"Replica void {n}")
        got = _race(lambda: w.call("carol", "a", "VoidEnvelope", pb.VoidEnvelopeRequest(
                        envelope_id=env.id, reason="withdrawn", idempotency_key=f"void {n}")),
                    lambda: w.call("dave", "b", "DeclineEnvelope", pb.DeclineEnvelopeRequest(
                        envelope_id=env.id, reason="not agreed", idempotency_key=f"decline {n}")))
        winners = [g for g in got if isinstance(g, pb.VoidEnvelopeResponse | pb.DeclineEnvelopeResponse)]
        assert len(winners) == 1, got  # the loser is refused: the envelope is already closed
        ended[env.id] = winners[0].envelope.state

    with ThreadPoolExecutor(4) as pool:
        signing = pool.map(lambda n: both_sign(n, ("a", "b")), range(6))
        list(pool.map(void_or_decline, range(24)))
        list(signing)

    # the replica running the background work (and sealing what just completed) dies in the middle of more load
    # on the other, which goes on alone and takes the background work over
    with ThreadPoolExecutor(2) as pool:
        more = pool.map(lambda n: both_sign(n, ("b", "b")), range(6, 10))
        time.sleep(2)
        w.a.kill()
        list(more)
    deadline = time.monotonic() + 60
    while LEADS not in w.b.log:
        assert time.monotonic() < deadline, "replica B never took the background work over"
        time.sleep(0.5)
    w.a = ServerProcess(w.r.env)  # back: it stands by now (B leads)
    w.r.server = w.a

    # every completed envelope sealed (by whichever replica led at the time), then the checks
    deadline = time.monotonic() + 300
    while True:
        pending = [e for e in signed if "sealed" not in {x.type for x in _events(w, e)}]
        if not pending:
            break
        assert time.monotonic() < deadline, f"not sealed: {pending}"
        time.sleep(2)
    for envelope_id, who in signed.items():
        events = _events(w, envelope_id)
        types = Counter(e.type for e in events)
        assert types["completed"] == 1 and types["sealed"] == 1 and types["signed"] == len(who), (envelope_id, types)
        assert len({e.id for e in events}) == len(events)
        notified = Counter(json.loads(e.detail_json)["message_id"] for e in events if e.type == "notified")
        assert notified and all(c == 1 for c in notified.values()), notified  # each notice delivered once
        env = w.call("carol", "a", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
        assert env.state == pb.ENVELOPE_STATE_COMPLETED and all(d.signatures == 2 for d in env.documents)
    for envelope_id, state in ended.items():
        types = Counter(e.type for e in _events(w, envelope_id))
        assert types["voided"] + types["declined"] == 1, (envelope_id, types)
        env = w.call("carol", "b", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
        assert env.state == state
    report = admin(w.r.env, "audit", "verify")
    assert report["ok"], report
