"""Phone possession: a one-time code sent to the registered number and accepted once, with evidence records."""

from __future__ import annotations

import logging

from ..clock import Clock, to_text
from ..errors import FailedPrecondition
from ..notify.message import Address, Channel
from ..otp import Challenge, OneTimeCodes, send_code
from . import evidence as chain
from .model import Person
from .people import People, actor
from .principal import Principal

log = logging.getLogger(__name__)

PHONE_PURPOSE = "phone-verification"


def _binding(person_id: str, phone: str) -> str:
    return f"{person_id}|{phone}"


class PhoneVerification:
    def __init__(self, people: People, codes: OneTimeCodes, notifier: Channel, clock: Clock) -> None:
        self._people = people
        self._codes = codes
        self._notifier = notifier
        self._clock = clock

    def start(self, principal: Principal, person_id: str) -> Challenge:
        """Send a one-time code to the person's phone.  Raises RateLimited, FailedPrecondition, Unavailable."""
        row = self._people.row(principal, person_id)
        if row["phone_verified_at"]:
            raise FailedPrecondition("this phone number is verified already", reason="PHONE_ALREADY_VERIFIED")
        challenge = send_code(
            self._codes, self._notifier, purpose=PHONE_PURPOSE, binding=_binding(person_id, row["phone"]),
            to=Address.phone(row["phone"]), subject="Signet verification code",
            text=lambda code, minutes: (f"Your Signet verification code is {code}. It expires in {minutes} "
                                        "minutes. Never share it; Signet staff will not ask for it."),
        )
        chain.append(self._people.store, person_id=person_id, org_id=row["org_id"], kind="phone_code_sent",
                     at=self._clock.now(), actor=actor(principal), provider=challenge.delivery.channel,
                     reference=challenge.code_id,
                     detail={"phone": row["phone"], "code_id": challenge.code_id,
                             "expires_at": to_text(challenge.expires_at),
                             "delivery": challenge.delivery.reference})
        return challenge

    def confirm(self, principal: Principal, person_id: str, code: str, code_id: str | None = None) -> Person:
        """Accept the code once; raises Unauthenticated (with an OTP_* reason) otherwise."""
        row = self._people.row(principal, person_id)
        if row["phone_verified_at"]:
            raise FailedPrecondition("this phone number is verified already", reason="PHONE_ALREADY_VERIFIED")
        accepted = self._codes.verify(PHONE_PURPOSE, _binding(person_id, row["phone"]), code, code_id)
        store = self._people.store
        with store.transaction():
            store.execute(
                "UPDATE identity_people SET phone_verified_at = ?, phone_verified_code_id = ? WHERE id = ?",
                (to_text(accepted.used_at), accepted.code_id, person_id))
            chain.append(store, person_id=person_id, org_id=row["org_id"], kind="phone_verified",
                         at=accepted.used_at, actor=actor(principal), provider="otp", reference=accepted.code_id,
                         detail={"phone": row["phone"], "code_id": accepted.code_id,
                                 "code_issued_at": to_text(accepted.issued_at)})
        log.info("identity: phone of %s verified (code %s)", person_id, accepted.code_id)
        return self._people.load(principal, person_id)
