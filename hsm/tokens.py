"""Token discovery: what is in the slots, and finding one by label or serial."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11.constants import TokenFlag

from .errors import HsmError, TokenAmbiguous, TokenNotFound
from .module import Module


@dataclass(frozen=True)
class TokenInfo:
    slot_id: int
    label: str
    serial: str
    manufacturer: str
    model: str
    login_required: bool
    initialized: bool
    user_pin_initialized: bool
    pin_count_low: bool
    pin_final_try: bool
    pin_locked: bool
    protected_authentication_path: bool
    write_protected: bool
    so_pin_locked: bool = False

    @classmethod
    def from_token(cls, tok: Any) -> TokenInfo:
        f = int(tok.flags)
        serial = tok.serial.decode("ascii", "replace") if isinstance(tok.serial, bytes) else str(tok.serial)
        return cls(
            slot_id=int(tok.slot.slot_id),
            label=tok.label.strip(),
            serial=serial.strip(),
            manufacturer=tok.manufacturer_id.strip(),
            model=tok.model.strip(),
            login_required=bool(f & TokenFlag.LOGIN_REQUIRED),
            initialized=bool(f & TokenFlag.TOKEN_INITIALIZED),
            user_pin_initialized=bool(f & TokenFlag.USER_PIN_INITIALIZED),
            pin_count_low=bool(f & TokenFlag.USER_PIN_COUNT_LOW),
            pin_final_try=bool(f & TokenFlag.USER_PIN_FINAL_TRY),
            pin_locked=bool(f & TokenFlag.USER_PIN_LOCKED),
            protected_authentication_path=bool(f & TokenFlag.PROTECTED_AUTHENTICATION_PATH),
            write_protected=bool(f & TokenFlag.WRITE_PROTECTED),
            so_pin_locked=bool(f & TokenFlag.SO_PIN_LOCKED),
        )


_SLOT_GONE: tuple[type[BaseException], ...] = (
    pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised, pkcs11.SlotIDInvalid,
    pkcs11.DeviceRemoved, pkcs11.DeviceError, pkcs11.GeneralError,
)


FIND_ATTEMPTS = 5  # slot enumerations before "not present", when some slot did not answer


def _raw_tokens(module: Module, skipped: list[str] | None = None) -> list[Any]:
    """Tokens in the slots; a slot that does not answer is left out (and its error added to ``skipped``)."""
    out = []
    try:
        for slot in module.lib.get_slots(token_present=True):
            try:
                out.append(slot.get_token())
            except _SLOT_GONE as e:
                # removed between listing and reading, or (SoftHSM) its files were deleted under
                # a module that still lists the slot (GeneralError until reinitialize): not present
                if skipped is not None:
                    skipped.append(f"slot {slot.slot_id}: {type(e).__name__}")
    except pkcs11.PKCS11Error as e:
        raise HsmError(f"cannot list tokens of {module.path}: {type(e).__name__}; retry") from e
    return out


def list_tokens(module: Module) -> list[TokenInfo]:
    """Every initialised or uninitialised token present in a slot (a slot that does not answer is left out)."""
    with module.shared():
        return [TokenInfo.from_token(t) for t in _raw_tokens(module)]


def find_raw_token(module: Module, *, label: str | None = None, serial: str | None = None) -> Any:
    """The python-pkcs11 Token with this label and/or serial (caller holds module.shared())."""
    if not label and not serial:
        raise TokenNotFound("give a token label or serial")
    for attempt in range(FIND_ATTEMPTS):
        skipped: list[str] = []
        matches = []
        for tok in _raw_tokens(module, skipped):
            info = TokenInfo.from_token(tok)
            if label and info.label != label:
                continue
            if serial and info.serial != serial:
                continue
            matches.append(tok)
        if matches or not skipped:
            break
        # a slot that did not answer may be one whose token another process is writing right now (SoftHSM
        # answers GeneralError meanwhile: measured with two servers and signet-admin on one token): ask again
        time.sleep(0.05 * (attempt + 1))
    what = " and ".join(
        x for x in (f"label {label!r}" if label else "", f"serial {serial!r}" if serial else "") if x
    )
    if not matches:
        present = ", ".join(f"{t.label.strip()!r} ({TokenInfo.from_token(t).serial})" for t in _raw_tokens(module))
        silent = f"; slots that did not answer: {', '.join(skipped)}" if skipped else ""
        raise TokenNotFound(
            f"no token with {what} is present; tokens present: {present or 'none'}{silent} "
            "(insert the token, or check the label/serial)"
        )
    if len(matches) > 1:
        raise TokenAmbiguous(
            f"{len(matches)} tokens match {what}; select the token by its serial instead"
        )
    return matches[0]


def find_token(module: Module, *, label: str | None = None, serial: str | None = None) -> TokenInfo:
    with module.shared():
        return TokenInfo.from_token(find_raw_token(module, label=label, serial=serial))
