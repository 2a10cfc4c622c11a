"""Token watcher: SoftHSM tokens coming and going while it runs, and when its reinitialisation policy reinitialises.

The udev classifier itself is tested in test_udev.py; here a match is fed to the watcher as a synthetic device.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from hsm import Hsm, HsmError, ReinitPolicy, TokenRemoved, TokenWatcher
from hsm import watcher as w
from hsm.tokens import find_token

from ..conftest import create_token, delete_token
from .test_udev import READER, USB_STICK

pytestmark = pytest.mark.hsm

_labels = itertools.count(1)


def _next(q: queue.Queue, timeout: float = 10.0) -> w.TokenEvent:
    return q.get(timeout=timeout)


@pytest.fixture
def new_label() -> Iterator[str]:
    """A label for a token the test creates; that token is deleted afterwards if it still exists."""
    label = f"hot-{os.getpid()}-{next(_labels)}"
    yield label
    subprocess.run(["softhsm2-util", "--delete-token", "--token", label], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def idle_watcher(hsm_module) -> Iterator[TokenWatcher]:
    """A started IDLE-policy watcher that polls only when the test calls poll(), with no reinit rate limit."""
    watcher = TokenWatcher(hsm_module, interval=60, reinitialize="idle", use_udev=False, reinit_interval=0)
    watcher.start()
    yield watcher
    watcher.stop()


def _poll_elsewhere(watcher: TokenWatcher, **kwargs: bool) -> bool:
    """watcher.poll() on another thread; False when it is still blocked after 10 s (a reinitialisation waiting
    for a call this thread has in flight)."""
    th = threading.Thread(target=lambda: watcher.poll(**kwargs), daemon=True)
    th.start()
    th.join(10)
    return not th.is_alive()


def test_tokens_created_and_deleted_while_running(hsm_module, new_label: str) -> None:
    watcher = TokenWatcher(hsm_module, interval=0.1, reinitialize=ReinitPolicy.ALWAYS, use_udev=False)
    seen: list[w.TokenEvent] = []
    watcher.subscribe(seen.append)
    q = watcher.events()
    with watcher:
        assert watcher.running
        before = {t.serial for t in watcher.present()}
        create_token(new_label)
        ev = _next(q)
        assert isinstance(ev, w.TokenInserted) and ev.token.label == new_label and ev.token.serial not in before
        assert ev.token.initialized and ev.token.login_required
        serial = ev.token.serial
        delete_token(new_label)
        ev = _next(q)
        assert ev == w.TokenRemoved(serial, new_label)
        assert serial not in {t.serial for t in watcher.present()}
    assert not watcher.running
    assert watcher.errors == 0 and watcher.reinits >= 2
    assert seen[:2] == [w.TokenInserted(seen[0].token), w.TokenRemoved(serial, new_label)]  # callbacks saw the same


def test_idle_policy_does_not_reinitialise_after_calls_since_the_last_poll(idle_watcher, logged_in_token) -> None:
    _, tok = logged_in_token
    key = tok.generate_key("p256", "busy")
    reinits = idle_watcher.reinits
    tok.sign(key.key_id, b"activity since the last poll")
    idle_watcher.poll()
    assert idle_watcher.reinits == reinits


def test_idle_policy_reinitialises_when_nothing_happened_since_the_last_poll(idle_watcher, hsm_module) -> None:
    idle_watcher.poll()
    reinits, generation = idle_watcher.reinits, hsm_module.generation
    idle_watcher.poll()
    assert idle_watcher.reinits == reinits + 1
    assert hsm_module.generation == generation + 1


def test_idle_policy_does_not_reinitialise_under_a_call_in_flight(idle_watcher, logged_in_token) -> None:
    _, tok = logged_in_token
    with tok.pool.session():  # started before the next poll and still running: no new call, one in flight
        assert _poll_elsewhere(idle_watcher)  # the borrow itself is activity since the last poll
        reinits = idle_watcher.reinits
        finished = _poll_elsewhere(idle_watcher)
    assert finished, "the poll tried to reinitialise under a session in flight"
    assert idle_watcher.reinits == reinits


def test_reinit_interval_limits_idle_reinitialisations_only(hsm_module) -> None:
    now = [1000.0]
    watcher = TokenWatcher(hsm_module, interval=60, reinitialize="idle", use_udev=False, reinit_interval=5.0,
                           clock=lambda: now[0])
    watcher.start()
    try:
        watcher.poll()
        assert watcher.reinits == 1  # idle since start, and no reinitialisation yet
        watcher.poll()
        assert watcher.reinits == 1  # idle, but 0 s after the last one
        now[0] += 4.9
        watcher.poll()
        assert watcher.reinits == 1
        now[0] += 0.2
        watcher.poll()
        assert watcher.reinits == 2  # 5.1 s after the last one
        watcher.poll(udev_triggered=True)
        assert watcher.reinits == 3  # a udev match is not limited
        watcher.poll(reinitialize=True)
        assert watcher.reinits == 4  # nor is a forced one
        with pytest.raises(ValueError):
            TokenWatcher(hsm_module, reinit_interval=-1)
    finally:
        watcher.stop()


def test_reinitialising_is_logged_at_debug_and_token_events_at_info(idle_watcher, new_label: str, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="hsm")
    idle_watcher.poll(reinitialize=True)
    reinit = [r for r in caplog.records if "reinitialised" in r.getMessage()]
    assert reinit and {r.levelno for r in reinit} == {logging.DEBUG}
    caplog.clear()
    create_token(new_label)
    events = idle_watcher.poll(reinitialize=True)
    assert [type(e) for e in events] == [w.TokenInserted]
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info] == [f"TokenInserted: token {events[0].token.serial}"]


def test_a_failing_poll_is_logged_once_until_polls_work_again(idle_watcher, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="hsm.watcher")

    def unreadable(module: object) -> list:
        raise HsmError("cannot list tokens: DeviceError; retry")

    monkeypatch.setattr(w, "list_tokens", unreadable)
    for _ in range(3):
        assert idle_watcher.poll(reinitialize=False) == []
    monkeypatch.undo()
    idle_watcher.poll(reinitialize=False)
    assert idle_watcher.errors == 3
    loud = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert [level for level, _ in loud] == [logging.WARNING, logging.INFO], loud
    assert "DeviceError" in loud[0][1] and "works again" in loud[1][1]


def test_a_pool_logs_in_again_after_the_watcher_reinitialised(idle_watcher, hsm_module, logged_in_token) -> None:
    _, tok = logged_in_token
    key = tok.generate_key("p256", "k")
    generation = hsm_module.generation
    idle_watcher.poll(reinitialize=True)
    assert hsm_module.generation == generation + 1
    tok.sign(key.key_id, b"after reinit")  # fresh sessions for the new generation, and the same login
    assert tok.logged_in


def test_a_token_read_between_a_reinitialisation_and_the_next_signature_is_still_logged_in(
    idle_watcher, hsm_module, logged_in_token,
) -> None:
    """The agent asks ``logged_in`` before it spends a grant; a poll or a GetInfo that read the token after the
    watcher reinitialised the module (dropping the old generation's login session) made it False until the next
    signature logged in again: "token ... lost its login; unlock it again" for a caller whose grant was live
    (seen under the benchmarks, where the agent idles between rounds)."""
    _, tok = logged_in_token
    key = tok.generate_key("p256", "k")
    idle_watcher.poll(reinitialize=True)
    tok.info()  # what a poll or GetInfo does next
    assert tok.logged_in
    tok.sign(key.key_id, b"after reinit")
    assert tok.logged_in


def test_logged_in_never_reads_false_while_another_thread_logs_in_again(
    idle_watcher, hsm_module, logged_in_token,
) -> None:
    """After a reinitialisation the next borrowed session logs in again with the kept PIN; another thread asking
    ``logged_in`` meanwhile (the agent does, before it spends a grant) must not see a gap."""
    import threading

    _, tok = logged_in_token
    key = tok.generate_key("p256", "k")
    seen_false = 0
    for _ in range(30):
        idle_watcher.poll(reinitialize=True)
        stop = threading.Event()

        def watch(stop: threading.Event) -> None:
            nonlocal seen_false
            while not stop.is_set():
                seen_false += not tok.logged_in

        t = threading.Thread(target=watch, args=(stop,))
        t.start()
        try:
            tok.sign(key.key_id, b"the first signature after the reinitialisation logs in again")
        finally:
            stop.set()
            t.join()
    assert seen_false == 0


def test_a_udev_match_reinitialises_a_busy_module_and_finds_the_new_token(
    hsm_module, logged_in_token, new_label: str,
) -> None:
    _, tok = logged_in_token
    key = tok.generate_key("p256", "k")
    watcher = TokenWatcher(hsm_module, interval=60, reinitialize="idle", use_udev=False)  # default reinit_interval
    q = watcher.events()
    with watcher:
        create_token(new_label)
        tok.sign(key.key_id, b"busy")  # activity since the last poll: the policy alone would not reinitialise
        assert watcher.handle_udev_event(READER) is not None  # wakes the poller at once
        ev = _next(q)
        assert isinstance(ev, w.TokenInserted) and ev.token.label == new_label
        assert watcher.udev_matches == 1 and watcher.reinits == 1


def test_a_device_that_is_no_token_does_not_wake_the_watcher(hsm_module) -> None:
    watcher = TokenWatcher(hsm_module, interval=60, reinitialize="always", use_udev=False)
    with watcher:
        assert watcher.handle_udev_event(USB_STICK) is None
        time.sleep(0.3)  # a woken poller would have polled by now
        assert watcher.udev_matches == 0
        assert watcher.polls == 0  # start() takes its snapshot without poll(); nothing woke the poller since


def test_the_callers_veto_wins_over_policy_and_udev(hsm_module) -> None:
    vetoed = TokenWatcher(hsm_module, reinitialize="always", may_reinitialize=lambda: False, use_udev=False)
    vetoed.poll()
    vetoed.poll(udev_triggered=True)
    assert vetoed.reinits == 0 and vetoed.polls == 2


def test_never_policy_sees_removals_without_reinitialising(hsm_module, new_label: str) -> None:
    create_token(new_label)
    hsm_module.reinitialize()
    serial = find_token(hsm_module, label=new_label).serial
    watcher = TokenWatcher(hsm_module, reinitialize=ReinitPolicy.NEVER, use_udev=False)
    watcher.start()
    watcher.stop()
    assert serial in {t.serial for t in watcher.present()}
    generation = hsm_module.generation
    delete_token(new_label)
    assert watcher.poll() == [w.TokenRemoved(serial, new_label)]
    assert hsm_module.generation == generation and watcher.reinits == 0


def test_removed_token_stale_handles_and_login(make_token, tmp_path) -> None:
    """After removal: TokenRemoved errors (never python-pkcs11 ones) and the login is gone with the token."""
    t = make_token("stale")
    h = Hsm(pin_state=tmp_path / "pins.json")
    tok = h.token(serial=t.serial)
    tok.login(t.pin)
    key = tok.generate_key("p256", "k")
    tok.sign(key.key_id, b"x")
    watcher = h.watch(interval=0.1, reinitialize=ReinitPolicy.NEVER, use_udev=False)
    q = watcher.events()
    try:
        delete_token(t.label)
        assert _next(q) == w.TokenRemoved(t.serial, t.label)
        assert not tok.logged_in  # Hsm.watch() made the pool forget the login and PIN
        assert tok.pool._pin is None
        for fn in (lambda: tok.sign(key.key_id, b"x"), tok.keys, tok.info):
            with pytest.raises(TokenRemoved):
                fn()
    finally:
        watcher.stop()


def test_a_failing_subscriber_does_not_stop_the_watcher(hsm_module, new_label: str) -> None:
    watcher = TokenWatcher(hsm_module, interval=0.1, reinitialize="always", use_udev=False)
    calls = threading.Event()

    def bad(_: w.TokenEvent) -> None:
        calls.set()
        raise RuntimeError("subscriber bug")

    watcher.subscribe(bad)
    q = watcher.events()
    with watcher:
        create_token(new_label)
        assert isinstance(_next(q), w.TokenInserted)
        assert calls.is_set() and watcher.running
        delete_token(new_label)
        assert isinstance(_next(q), w.TokenRemoved)


def test_start_stop_is_clean_and_udev_is_optional(hsm_module) -> None:
    watcher = TokenWatcher(hsm_module, interval=0.05, reinitialize="never")
    watcher.start()
    with pytest.raises(RuntimeError):
        watcher.start()
    names = {th.name for th in threading.enumerate()}
    assert "hsm-token-poll" in names
    assert ("hsm-token-udev" in names) == watcher.udev_active
    watcher.stop()
    assert not watcher.running
    assert not {"hsm-token-poll", "hsm-token-udev"} & {th.name for th in threading.enumerate()}
    watcher.start(emit_present=True)  # restartable
    watcher.stop()
    with pytest.raises(ValueError):
        TokenWatcher(hsm_module, interval=0)
