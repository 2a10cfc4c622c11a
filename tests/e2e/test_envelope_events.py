"""WatchEnvelopeEvents and the notice queue against a real `signet-server` process.

- An operator of the sender's organisation and a recipient watch while other clients act: each sees the events it
  may see, live (within a couple of seconds, woken at each commit), in id order; the recipient never sees another
  person's envelope.
- A watcher that disconnects and resumes from the last id it received gets exactly the events it missed -- no
  gap, no repeat -- as a full replay confirms.
- SIGTERM ends open watches with UNAVAILABLE ``SERVER_STOPPING`` and the server exits cleanly; after the restart
  the watch resumes from its last id.
- kill -9 while notices are pending (the e-mail webhook down, the dispatcher retrying): after the restart, with the
  webhook back, every notice is delivered, each accepted exactly once (by its X-Signet-Delivery id), as
  docs/server.md documents; the recipients' notified_at is the moment of the hand-off after the restart.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from formats.samplepdf import contract_pdf_bytes
from scripts.processes import ServerProcess
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg
from signet.wire import reason_of
from tests.server_helpers import Received, http_receiver

from .authz_world import enroll_in_process
from .server_harness import ClientFiles, Running, admin, channel, prc_id, register_verified, start_running

pytestmark = pytest.mark.e2e

PEOPLE = {"alice": ("19900307", "461", "+8613800138041"), "bob": ("19850511", "137", "+8613800138042"),
          "carol": ("19780101", "252", "+8613800138043")}
QUICK = ("\n[envelopes]\nscheduler_seconds = 0.5\nnotice_retry_seconds = 0.5\nnotice_retry_max_seconds = 1\n"
         "max_watches = 3\n")  # of the 4 gRPC workers the test server has
LIVE = 3.0  # seconds within which a watcher sees an event (it is woken at the commit)
SECRET_ENV = "SIGNET_TEST_NOTICE_WEBHOOK_SECRET"


@dataclass
class World:
    r: Running
    base: Path
    people: dict[str, str]
    agents: dict[str, ClientFiles] = field(default_factory=dict)

    def stub(self, client: ClientFiles) -> tuple[grpc.Channel, pbg.EnvelopeServiceStub]:
        ch = channel(self.r.env, client)
        return ch, pbg.EnvelopeServiceStub(ch)

    def call(self, who: str, method: str, request: Any) -> Any:
        ch, stub = self.stub(self.agents[who])
        with ch:
            return getattr(stub, method)(request, timeout=60)


def _world(make_token, base: Path, extra: str, enroll: tuple[str, ...]) -> World:
    tok = make_token(f"ev-{base.name[-12:]}")
    r = start_running(base, tok.label, tok.pin, extra)
    try:
        with channel(r.env, r.op_a) as op:
            people = {n: register_verified(r, op, f"{n.title()} Watcher", prc_id(birth, seq), phone,
                                           f"{n}@example.com") for n, (birth, seq, phone) in PEOPLE.items()}
        w = World(r, base, people)
        for name in enroll:
            w.agents[name] = enroll_in_process(r, people[name], PEOPLE[name][2], make_token(f"{name}-ev"),
                                               base / f"{name}-agent").agent
        return w
    except BaseException:
        r.server.kill()
        raise


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    w = _world(make_token, tmp_path_factory.mktemp("watch"), QUICK, ("alice", "bob"))
    try:
        yield w
    finally:
        if w.r.server.alive:
            assert w.r.server.stop() == 0


def _create(w: World, title: str, to: list[str]) -> pb.Envelope:
    return w.call("alice", "CreateEnvelope", pb.CreateEnvelopeRequest(
        title=title, documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf",
                                                content=contract_pdf_bytes(title, ["Alice", "Bob"]))],
        recipients=[pb.RecipientSpec(person_id=w.people[n], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
                                     signing_method=pb.SIGNING_METHOD_TOKEN) for n in to])).envelope


class Watcher:
    """A WatchEnvelopeEvents call read by a thread; messages (or the error that ended it) in a queue."""

    def __init__(self, w: World, client: ClientFiles, envelope_id: str = "", after: int = 0) -> None:
        self.ch, stub = w.stub(client)
        self.call = stub.WatchEnvelopeEvents(pb.WatchEnvelopeEventsRequest(envelope_id=envelope_id,
                                                                           after_event_id=after))
        self.q: queue.Queue[Any] = queue.Queue()
        self.last = after
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for m in self.call:
                self.q.put(m)
        except grpc.RpcError as e:
            self.q.put(e)
        self.q.put(None)

    def next(self, timeout: float = 30) -> Any:
        m = self.q.get(timeout=timeout)
        if isinstance(m, grpc.RpcError):
            raise m
        if m is not None:
            self.last = m.last_event_id
        return m

    def caught_up(self) -> list[pb.EnvelopeEvent]:
        got = []
        while not (m := self.next()).caught_up:
            got.append(m.event)
        return got

    def events(self, n: int, timeout: float = LIVE) -> list[pb.EnvelopeEvent]:
        return [self.next(timeout).event for _ in range(n)]

    def quiet(self, seconds: float = 1.0) -> bool:
        time.sleep(seconds)
        return self.q.empty()

    def close(self) -> None:
        self.call.cancel()
        self.ch.close()


def _all_events(w: World, envelope_ids: list[str]) -> list[pb.EnvelopeEvent]:
    out = []
    for env_id in envelope_ids:
        out += w.call("alice", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(envelope_id=env_id,
                                                                                  page_size=200)).events
    return sorted(out, key=lambda e: e.id)


def test_watchers_see_what_they_may_see_live(world: World) -> None:
    w = world
    operator = Watcher(w, w.r.reviewer_a)  # an operator of the sender's organisation: every envelope of org A
    bob = Watcher(w, w.agents["bob"])  # a recipient: only what is addressed to him, once sent
    other_org = Watcher(w, w.r.op_b)
    for watcher in (operator, bob, other_org):
        assert watcher.caught_up() == []  # a new server: nothing to replay
    try:
        draft = _create(w, "Watched lease", ["bob"])
        [created] = operator.events(1)
        assert (created.type, created.envelope_id, created.actor) == ("created", draft.id,
                                                                    f"person:{w.people['alice']}")
        t0 = time.monotonic()
        w.call("alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=draft.id))
        assert [e.type for e in operator.events(2)] == ["sent", "notified"]  # the notice handed to the outbox
        assert time.monotonic() - t0 < LIVE
        assert [e.type for e in bob.events(2)] == ["sent", "notified"]  # the draft's "created" was not his to see
        w.call("bob", "GetDocument", pb.GetDocumentRequest(envelope_id=draft.id, document_id=draft.documents[0].id))
        w.call("bob", "DeclineEnvelope", pb.DeclineEnvelopeRequest(envelope_id=draft.id, reason="wrong rent"))
        assert [e.type for e in operator.events(2)] == ["viewed", "declined"]
        assert [e.type for e in bob.events(2)] == ["viewed", "declined"]
        to_carol = _create(w, "Another lease", ["carol"])
        w.call("alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=to_carol.id))
        assert [e.envelope_id for e in operator.events(3)] == [to_carol.id] * 3
        assert bob.quiet() and other_org.quiet(0)  # not addressed to Bob; another organisation sees nothing
    finally:
        for watcher in (operator, bob, other_org):
            watcher.close()


def test_a_watcher_resumes_from_its_last_id_without_gap_or_repeat(world: World) -> None:
    w = world
    first = Watcher(w, w.r.reviewer_a)
    seen = [e.id for e in first.caught_up()]
    env = _create(w, "Resumed lease", ["bob"])
    w.call("alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=env.id))
    seen += [e.id for e in first.events(3)]  # created, sent, notified
    last = first.last
    first.close()  # the integrator goes away ...
    w.call("bob", "DeclineEnvelope", pb.DeclineEnvelopeRequest(envelope_id=env.id, reason="not now"))
    voided = _create(w, "Voided lease", ["bob"])
    w.call("alice", "VoidEnvelope", pb.VoidEnvelopeRequest(envelope_id=voided.id, reason="typo"))
    again = Watcher(w, w.r.reviewer_a, after=last)  # ... and comes back with the last id it received
    missed = again.caught_up()
    assert [e.type for e in missed] == ["declined", "created", "voided"]
    seen += [e.id for e in missed]
    w.call("alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=_create(w, "Live lease", ["bob"]).id))
    seen += [e.id for e in again.events(3)]
    again.close()
    full = Watcher(w, w.r.reviewer_a)
    everything = [e.id for e in full.caught_up()]
    full.close()
    assert seen == everything and len(set(seen)) == len(seen)  # no gap, no repeat, in id order
    one = Watcher(w, w.agents["alice"], envelope_id=env.id, after=0)  # one envelope's events only
    assert [e.id for e in one.caught_up()] == [e.id for e in _all_events(w, [env.id])]
    one.close()


def test_watches_of_what_the_caller_may_not_see_are_refused(world: World) -> None:
    w = world
    env = _create(w, "Private lease", ["alice"])
    for client in (w.agents["bob"], w.r.op_b):
        ch, stub = w.stub(client)
        with ch, pytest.raises(grpc.RpcError) as e:
            next(iter(stub.WatchEnvelopeEvents(pb.WatchEnvelopeEventsRequest(envelope_id=env.id), timeout=30)))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_sigterm_ends_the_watches_and_a_restart_resumes(world: World) -> None:
    """Last in the module: it restarts the server."""
    w = world
    watcher = Watcher(w, w.r.reviewer_a)
    watcher.caught_up()
    last = watcher.last
    t0 = time.monotonic()
    assert w.r.server.stop() == 0
    assert time.monotonic() - t0 < 10  # the watch did not hold the stop up
    with pytest.raises(grpc.RpcError) as e:
        while watcher.next(10) is not None:
            pass
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(e.value) in ("SERVER_STOPPING", "")  # "" when the connection closed before the trailer
    watcher.close()
    w.r.server = ServerProcess(w.r.env)
    resumed = Watcher(w, w.r.reviewer_a, after=last)
    assert resumed.caught_up() == []
    env = _create(w, "After the restart", ["bob"])
    [created] = resumed.events(1)
    assert created.envelope_id == env.id and created.id > last
    resumed.close()


# -- kill -9 with notices pending ---------------------------------------------------------------------------------
def test_notices_pending_at_a_kill_are_delivered_once_after_the_restart(make_token, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "n" * 40)
    up = threading.Event()
    accepted: list[str] = []

    def hook(req: Received, index: int) -> tuple[int, dict[str, str], bytes]:
        if not up.is_set():
            return 503, {}, b"down"
        accepted.append(req.headers["X-Signet-Delivery"])
        return 200, {}, b"{}"

    with http_receiver(hook) as receiver:
        extra = (QUICK + f'\n[notify]\ndefault = "outbox"\nemail = "webhook"\n[notify.webhook]\nurl = "{receiver.url}"'
                 f'\nsecret_env = "{SECRET_ENV}"\nallow_http = true\n')
        w = _world(make_token, tmp_path / "kill", extra, ("alice",))
        try:
            env = _create(w, "Lease sent into a storm", ["bob", "carol"])
            sent = w.call("alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=env.id)).envelope
            assert sent.state == pb.ENVELOPE_STATE_SENT  # the change committed with the webhook down
            deadline = time.monotonic() + 30
            while len(receiver.requests) < 2 and time.monotonic() < deadline:  # the dispatcher is trying
                time.sleep(0.1)
            assert receiver.requests and not accepted
            w.r.server.kill()  # kill -9 in the middle of the retries
            pending = admin(w.r.env, "notice", "list", "--envelope", env.id)
            assert sorted(n["to"] for n in pending) == ["bob@example.com", "carol@example.com"]
            assert {n["state"] for n in pending} == {"pending"}
            up.set()
            restarted_at = time.time()
            w.r.server = ServerProcess(w.r.env)
            deadline = time.monotonic() + 60
            while len(accepted) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)  # three more polls: nothing more may come
            notices = admin(w.r.env, "notice", "list", "--envelope", env.id)
            assert {n["state"] for n in notices} == {"delivered"}
            assert sorted(accepted) == sorted(n["id"] for n in notices)  # each accepted exactly once
            assert all(n["in_doubt"] <= 1 for n in notices)  # at most the one in hand-off at the kill
            got = w.call("alice", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=env.id)).envelope
            for r in got.recipients:
                assert r.HasField("notified_at") and r.notified_at.seconds >= int(restarted_at) - 1
            events = _all_events(w, [env.id])
            assert [e.type for e in events].count("notified") == 2 and "notice_failed" not in [e.type for e in events]
            # an operator re-sends the send's notices with signet-admin: the running server picks them up
            sent_event = next(e for e in events if e.type == "sent")
            replayed = admin(w.r.env, "notice", "replay", str(sent_event.id), login="ops-on-call")
            assert sorted(n["replay_of"] for n in replayed) == sorted(n["id"] for n in notices)
            deadline = time.monotonic() + 30
            while len(accepted) < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(accepted[2:]) == sorted(n["id"] for n in replayed)
            last = _all_events(w, [env.id])[-1]
            assert (last.type, last.actor) == ("notices_replayed", "operator:ops-on-call")
        finally:
            if w.r.server.alive:
                assert w.r.server.stop() == 0
