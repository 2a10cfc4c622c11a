"""The event watch in-process, on a real store: replay then follow, each event authorised like GetEnvelope,
resumption from an id without a gap or a repeat, the watch limit, and the end when the service stops."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.envelopes import Tuning, WatchItem
from server.errors import NotFound, RateLimited, Unavailable

from .test_envelopes_world import S, World, make_world

TIMEOUT = 10


class Follower:
    """A watch consumed by a thread, items in a queue (what a gRPC worker does with the stream)."""

    def __init__(self, watch: Callable[[Callable[[], bool]], Iterator[WatchItem]]) -> None:
        self.items: queue.Queue[WatchItem | BaseException] = queue.Queue()
        self.cancelled = threading.Event()
        self._it = watch(self.cancelled.is_set)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self._it:
                self.items.put(item)
        except BaseException as e:  # handed to the test
            self.items.put(e)

    def next(self) -> WatchItem:
        item = self.items.get(timeout=TIMEOUT)
        if isinstance(item, BaseException):
            raise item
        return item

    def until_caught_up(self) -> list[WatchItem]:
        got = []
        while not (item := self.next()).caught_up:
            got.append(item)
        return got

    def types(self, n: int) -> list[str]:
        return [self.next().event.type for _ in range(n)]  # type: ignore[union-attr]


def _world(tmp_path: Path, **tuning) -> World:
    return make_world(tmp_path, tuning=Tuning(poll_seconds=30, **tuning))  # only the bell wakes a watch quickly


def _follow(w: World, who, envelope_id: str = "", after: int = 0) -> Follower:
    return Follower(lambda cancelled: w.svc.watch(who, envelope_id, after, cancelled=cancelled))


def test_replay_then_follow_each_event_as_getenvelope_would_allow(tmp_path: Path) -> None:
    w = _world(tmp_path)
    mine = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    draft_for_bob = w.create("alice", [("bob", S, 1)])  # a draft: Bob may not see it
    bob = _follow(w, w.me("bob"))
    replayed = bob.until_caught_up()
    assert {i.event.envelope_id for i in replayed} == {mine.id}  # type: ignore[union-attr]
    assert [i.event.type for i in replayed] == ["created", "sent"]  # type: ignore[union-attr]
    op = _follow(w, w.other_op)  # another organisation's operator sees nothing of Acme's
    assert op.until_caught_up() == []
    alice = _follow(w, w.me("alice"), draft_for_bob.id)
    assert [i.event.type for i in alice.until_caught_up()] == ["created"]  # type: ignore[union-attr]

    w.deliver()  # live: the notice handed over ...
    assert bob.types(1) == ["notified"]
    w.svc.send(w.me("alice"), draft_for_bob.id)  # ... and the draft sent: Bob sees it from now on
    assert bob.types(1) == ["sent"]
    assert alice.types(1) == ["sent"]
    w.svc.void(w.me("alice"), mine.id, "wrong crane")
    assert bob.types(1) == ["voided"]
    assert op.items.empty()
    for f in (bob, op, alice):
        f.cancelled.set()
    w.svc.bell.ring()  # what the gRPC edge does when a call ends
    for f in (bob, op, alice):
        f.thread.join(TIMEOUT)
        assert not f.thread.is_alive()


def test_resume_from_an_id_without_gap_or_repeat(tmp_path: Path) -> None:
    w = _world(tmp_path)
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)]).id)
    w.deliver()
    everything = [i.event for i in _follow(w, w.me("alice"), env.id).until_caught_up()]
    assert [e.type for e in everything] == ["created", "sent", "notified", "notified"]  # type: ignore[union-attr]
    cut = everything[1].id  # type: ignore[union-attr]
    rest = _follow(w, w.me("alice"), env.id, after=cut)
    items = rest.until_caught_up()
    assert [i.event.id for i in items] == [e.id for e in everything[2:]]  # type: ignore[union-attr]
    caught = _follow(w, w.me("alice"), after=everything[-1].id)  # type: ignore[union-attr]
    assert caught.until_caught_up() == []


def test_a_watch_of_an_envelope_the_caller_may_not_see_is_not_found(tmp_path: Path) -> None:
    w = _world(tmp_path)
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    for who in (w.me("erin"), w.other_op):
        with pytest.raises(NotFound):
            next(w.svc.watch(who, env.id))
    with pytest.raises(NotFound):
        next(w.svc.watch(w.me("alice"), "env_" + "0" * 24))


def test_the_watch_limit_and_the_end_when_the_service_stops(tmp_path: Path) -> None:
    w = _world(tmp_path, max_watches=1)
    first = _follow(w, w.me("alice"))
    assert first.until_caught_up() == []
    with pytest.raises(RateLimited) as e:
        next(w.svc.watch(w.me("bob")))
    assert e.value.reason == "BUSY"
    w.svc.stop()
    with pytest.raises(Unavailable) as ended:
        first.next()
    assert ended.value.reason == "SERVER_STOPPING"
    with pytest.raises(Unavailable):  # a new one is refused too
        next(w.svc.watch(w.me("bob")))
