"""Sessions and login: one login per token, no leaked sessions, the persisted wrong-PIN counter."""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest
from pkcs11 import Attribute, ObjectClass

from hsm import Hsm, LoginRequired, PinIncorrect, PinLocked, Token
from hsm.sessions import SessionPool, login_refusal
from hsm.tokens import find_token

from .probes import CKS_RW_USER, open_sessions

pytestmark = pytest.mark.hsm

WRONG = "97531"


def _slot(hsm_module, serial: str) -> int:
    return find_token(hsm_module, serial=serial).slot_id


def test_second_login_is_success_and_sessions_are_logged_in(make_token, hsm_root: Hsm, hsm_module) -> None:
    t = make_token("login2")
    tok = hsm_root.token(serial=t.serial)
    assert not tok.logged_in
    with pytest.raises(LoginRequired):
        tok.keys()
    tok.login(t.pin)
    tok.login(t.pin)  # UserAlreadyLoggedIn is success
    assert tok.logged_in
    tok.generate_key("p256", "k")
    states = open_sessions(hsm_module, _slot(hsm_module, t.serial))
    assert states and set(states.values()) == {CKS_RW_USER}
    tok.logout()
    assert open_sessions(hsm_module, _slot(hsm_module, t.serial)) == {}
    with pytest.raises(LoginRequired):
        tok.keys()


def test_failed_login_leaks_no_session(make_token, hsm_root: Hsm, hsm_module) -> None:
    t = make_token("leak")
    tok = hsm_root.token(serial=t.serial)
    slot = _slot(hsm_module, t.serial)
    before = open_sessions(hsm_module, slot)
    for _ in range(3):
        with pytest.raises(PinIncorrect):
            tok.login(WRONG)
    assert open_sessions(hsm_module, slot) == before == {}
    tok.login(t.pin)
    assert len(open_sessions(hsm_module, slot)) == 1  # the anchor


def test_wrong_pin_while_logged_in_is_still_wrong(logged_in_token) -> None:
    """The token says USER_ALREADY_LOGGED_IN to any PIN once logged in; the pool must not."""
    t, tok = logged_in_token
    with pytest.raises(PinIncorrect) as ei:
        tok.login(WRONG)
    assert ei.value.remaining == 4
    tok.login(t.pin)
    assert tok.pin_tries_left() == 5


def test_closing_pooled_sessions_keeps_the_others_logged_in(make_token, hsm_root: Hsm, hsm_module) -> None:
    t = make_token("close")
    info = find_token(hsm_module, serial=t.serial)
    pool = SessionPool(hsm_module, t.serial, hsm_root.guard, max_idle=0)  # every session closed after use
    tok = Token(pool)
    tok.login(t.pin)
    key = tok.generate_key("p256", "churn")
    with pool.session() as held:
        for _ in range(20):
            tok.sign(key.key_id, b"x")  # opens and closes a session each time
        # private objects are only visible to a logged-in application
        found = list(held.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                Attribute.ID: bytes.fromhex(key.key_id)}))
        assert len(found) == 1
    states = open_sessions(hsm_module, info.slot_id)
    assert list(states.values()) == [CKS_RW_USER]  # only the anchor is left, still logged in
    tok.sign(key.key_id, b"still fine")
    tok.logout()


def test_wrong_pins_count_down_then_lock_and_stay_locked(make_token, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    t = make_token("pin")
    state = tmp_path / "pins.json"
    h = Hsm(pin_state=state, max_pin_failures=3)
    tok = h.token(serial=t.serial)
    remaining = []
    for _ in range(2):
        with pytest.raises(PinIncorrect) as ei:
            tok.login(WRONG)
        remaining.append(ei.value.remaining)
        assert t.label in str(ei.value) and "tries left" in str(ei.value)
    assert remaining == [2, 1]
    with pytest.raises(PinLocked):
        tok.login(WRONG)
    with pytest.raises(PinLocked):
        tok.login(t.pin)  # locked by us even though SoftHSM would accept it
    assert not tok.logged_in
    # a restarted process (new Hsm, same state file) is still locked
    tok2 = Hsm(pin_state=state, max_pin_failures=3).token(serial=t.serial)
    with pytest.raises(PinLocked) as ei2:
        tok2.login(t.pin)
    assert "administrator" in str(ei2.value)
    for rec in caplog.records:
        assert WRONG not in rec.getMessage() and t.pin not in rec.getMessage()
    assert WRONG not in state.read_text()
    # an administrative reset unlocks
    tok2.pool.guard.reset(t.serial)
    tok2.login(t.pin)
    tok2.logout()


def test_success_resets_the_counter(make_token, hsm_root: Hsm) -> None:
    t = make_token("reset")
    tok = hsm_root.token(serial=t.serial)
    for _ in range(4):
        with pytest.raises(PinIncorrect):
            tok.login(WRONG)
    assert tok.pin_tries_left() == 1
    tok.login(t.pin)
    assert tok.pin_tries_left() == 5
    tok.logout()


def test_refuses_when_token_reports_final_try_or_locked(make_token, hsm_module) -> None:
    """SoftHSM never reports final try or locked, so the decision is tested on real TokenInfo values."""
    info = find_token(hsm_module, serial=make_token("final").serial)
    assert login_refusal(info, "x") is None
    final = login_refusal(dataclasses.replace(info, pin_final_try=True), "x")
    locked = login_refusal(dataclasses.replace(info, pin_locked=True), "x")
    assert isinstance(final, PinLocked) and "one PIN try left" in str(final)
    assert isinstance(locked, PinLocked) and "SO PIN" in str(locked)


def test_concurrent_logins_make_one_anchor(make_token, hsm_root: Hsm, hsm_module) -> None:
    t = make_token("conc")
    tok = hsm_root.token(serial=t.serial)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            tok.login(t.pin)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    ts = [threading.Thread(target=go) for _ in range(8)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    assert errors == []
    assert len(open_sessions(hsm_module, _slot(hsm_module, t.serial))) == 1
    tok.logout()
