"""Token listing, flags and lookup by label/serial against real SoftHSM tokens."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pkcs11
import pytest

from hsm import Hsm, TokenNotFound
from hsm.errors import HsmError, TokenAmbiguous
from hsm.tokens import find_token, list_tokens

from ..conftest import create_token, delete_token

pytestmark = pytest.mark.hsm


def test_listing_shows_label_serial_and_flags(make_token, hsm_root: Hsm) -> None:
    t = make_token("list")
    infos = {i.serial: i for i in hsm_root.tokens()}
    info = infos[t.serial]
    assert info.label == t.label
    assert info.manufacturer == "SoftHSM project"
    assert info.model == "SoftHSM v2"
    assert info.initialized and info.user_pin_initialized and info.login_required
    assert not (info.pin_locked or info.pin_final_try or info.pin_count_low)
    # the uninitialised spare slot SoftHSM always offers is listed too, and says so
    assert any(not i.initialized for i in infos.values())


def test_find_by_label_and_by_serial(make_token, hsm_module) -> None:
    a, b = make_token("fa"), make_token("fb")
    assert find_token(hsm_module, label=a.label).serial == a.serial
    assert find_token(hsm_module, serial=b.serial).label == b.label
    assert find_token(hsm_module, label=b.label, serial=b.serial).serial == b.serial
    with pytest.raises(TokenNotFound):
        find_token(hsm_module, label=a.label, serial=b.serial)  # both given: both must match


def test_absent_token_error_names_what_is_present(make_token, hsm_root: Hsm) -> None:
    t = make_token("abs")
    with pytest.raises(TokenNotFound) as ei:
        hsm_root.token(label="no-such-token")
    msg = str(ei.value)
    assert "no-such-token" in msg and t.label in msg and "insert the token" in msg
    with pytest.raises(TokenNotFound):
        hsm_root.token(serial="0000000000000000")
    with pytest.raises(TokenNotFound):
        hsm_root.token()


def test_two_tokens_with_one_label_are_ambiguous(hsm_module, hsm_root: Hsm) -> None:
    label = f"twin-{os.getpid()}"
    create_token(label)
    create_token(label)
    hsm_module.reinitialize()
    twins = [i for i in list_tokens(hsm_module) if i.label == label]
    assert len(twins) == 2 and twins[0].serial != twins[1].serial
    with pytest.raises(TokenAmbiguous) as ei:
        hsm_root.token(label=label)
    assert "serial" in str(ei.value)
    assert isinstance(ei.value, HsmError)
    # the serial tells them apart
    assert hsm_root.token(serial=twins[1].serial).serial == twins[1].serial
    assert hsm_root.token(label=label, serial=twins[0].serial).serial == twins[0].serial


def test_deleted_token_drops_out_of_the_listing(hsm_module) -> None:
    """SoftHSM answers GeneralError for a slot whose token files are gone; listing skips it."""
    label = f"gone-{os.getpid()}"
    create_token(label)
    hsm_module.reinitialize()
    serial = find_token(hsm_module, label=label).serial
    delete_token(serial=serial)
    assert serial not in {i.serial for i in list_tokens(hsm_module)}  # no reinitialize needed for removal
    with pytest.raises(TokenNotFound):
        find_token(hsm_module, serial=serial)


class _FlakySlot:
    """A slot whose token does not answer (GeneralError) the first ``failures`` times: SoftHSM while another
    process writes that token's files."""

    def __init__(self, slot_id: int, label: str, failures: int) -> None:
        self.slot_id, self.failures = slot_id, failures
        self.token = SimpleNamespace(slot=self, label=label.ljust(32), serial=b"f1a5c0ffee000001",
                                     manufacturer_id="SoftHSM", model="SoftHSM v2", flags=0)

    def get_token(self):
        if self.failures:
            self.failures -= 1
            raise pkcs11.exceptions.GeneralError()
        return self.token


def test_a_slot_that_does_not_answer_for_a_moment_is_asked_again() -> None:
    from hsm.tokens import FIND_ATTEMPTS, find_raw_token

    slot = _FlakySlot(7, "busy", failures=2)
    module = SimpleNamespace(lib=SimpleNamespace(get_slots=lambda token_present: [slot]))
    assert find_raw_token(module, label="busy") is slot.token  # type: ignore[arg-type]
    gone = _FlakySlot(8, "gone", failures=FIND_ATTEMPTS)
    module = SimpleNamespace(lib=SimpleNamespace(get_slots=lambda token_present: [gone]))
    with pytest.raises(TokenNotFound, match="slots that did not answer: slot 8: GeneralError"):
        find_raw_token(module, label="gone")  # type: ignore[arg-type]  # silent after every attempt: not present
