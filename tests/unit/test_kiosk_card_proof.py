"""Card sessions need the card's proof (server.kiosk.CardSessions.open): a statement (signet.cardproof) signed on the
card with its holder's PIN.  In-process, on the envelope tests' world (tests/unit/test_envelopes_world.py): the real
IdentityService, certificates of a Signet-shaped signing CA recorded for their persons in the server's CA tables,
CAdES signatures made the agent's way (formats.sign_detached) with each person's key, a ManualClock.  The same
refusals against a real server and real SoftHSM cards: tests/e2e/test_authz_matrix.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import logging
from typing import Any

import pytest

from formats import TokenSigner, sign_detached
from server.identity import Principal, Role
from server.kiosk import CARD_REFUSED, MIGRATIONS, PROOF_WINDOW, CardRefused, CardSessions
from signet import cardproof

from .test_envelopes_world import Signer, World, make_world

STATION = "lobby-1"


@pytest.fixture(scope="module")
def w(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("kiosk-proof"))


@pytest.fixture(scope="module")
def sessions(w: World) -> CardSessions:
    return CardSessions(w.store, b"k" * 32, w.clock, w.identity, w.rules.issuer_key_hash,
                        trust_roots=w.rules.trust_roots)


def _station(w: World, name: str = STATION) -> Principal:
    return Principal(w.acme_op.org_id, name, Role.STATION)


def _proof(w: World, card: Signer, *, cert: bytes | None = None, org: str | None = None, station: str = STATION,
           at: dt.datetime | None = None, signer: TokenSigner | None = None) -> tuple[bytes, bytes]:
    """(statement, signature): ``card``'s statement about ``cert`` (default its own certificate) at ``station`` of
    ``org`` (default Acme's), at ``at`` (default the server's now), signed by ``signer`` (default the card)."""
    statement = cardproof.statement(org or w.acme_op.org_id, station, cert or card.cert, at=at or w.clock.now())
    return statement, sign_detached(io.BytesIO(statement), signer or card.signer())


def _open(w: World, sessions: CardSessions, card: Signer, proof: tuple[bytes, bytes], *,
          cert: bytes | None = None) -> Any:
    statement, signature = proof
    return sessions.open(_station(w), cert or card.cert, proof_statement=statement, proof_signature=signature)


def _refused(w: World, sessions: CardSessions, card: Signer, proof: tuple[bytes, bytes], *,
             cert: bytes | None = None) -> None:
    with pytest.raises(CardRefused) as e:
        _open(w, sessions, card, proof, cert=cert)
    assert e.value.reason == "CARD_REFUSED" and e.value.message == CARD_REFUSED  # said the same way, always


class _ImpostorToken:
    """Bob's private key behind a token that claims Alice's public key: a signature that names her certificate."""

    label = "impostor"

    def __init__(self, signing: Any, claimed: Any) -> None:
        self._signing, self._claimed = signing, claimed

    def key(self, key_id: str) -> Any:
        return self._claimed.key(key_id)

    def certificate(self, key_id: str) -> bytes | None:
        return None

    def chain(self, key_id: str) -> list[bytes]:
        return []

    def sign_digest(self, key_id: str, dgst: bytes, *, hash_name: str = "sha256") -> bytes:
        return bytes(self._signing.sign_digest(key_id, dgst, hash_name=hash_name))


def test_a_valid_proof_opens_a_session_for_the_card_holder(w, sessions):
    alice = w.signers["alice"]
    opened = _open(w, sessions, alice, _proof(w, alice))
    assert opened.person_id == w.people["alice"].id and opened.display_name == "Alice Envelope"
    holder = sessions.holder(_station(w), opened.session_id)
    assert holder.subject == w.people["alice"].id and holder.role is Role.MEMBER


def _cases(w: World) -> dict[str, tuple[tuple[bytes, bytes], bytes | None]]:
    """Each refused case: (the proof, the certificate sent instead of Alice's, when another); only the named thing is
    wrong in each (the valid test above is their control)."""
    alice, bob = w.signers["alice"], w.signers["bob"]
    now = w.clock.now()
    good_statement, good_signature = _proof(w, alice)
    altered = good_statement[:-2] + (b"00" if not good_statement.endswith(b"00") else b"11")
    impostor = TokenSigner(_ImpostorToken(bob.token, alice.token), "k", certificate=alice.cert, chain=alice.chain)
    return {
        "no proof": ((b"", b""), None),
        "a statement without its signature": ((good_statement, b""), None),
        "a signature without its statement": ((b"", good_signature), None),
        "a statement that is not one": ((b"signet-card-session-v1\nopen sesame", good_signature), None),
        "signed by another person's card": (_proof(w, alice, signer=bob.signer()), None),
        "another key naming the card's certificate": (_proof(w, alice, signer=impostor), None),
        "the statement changed after it was signed": ((altered, good_signature), None),
        "a statement for another station": (_proof(w, alice, station="lobby-2"), None),
        "a statement for another organisation": (_proof(w, alice, org=w.people["dave"].org_id), None),
        "a stale statement": (_proof(w, alice, at=now - PROOF_WINDOW - dt.timedelta(seconds=1)), None),
        "a statement from the future": (_proof(w, alice, at=now + PROOF_WINDOW + dt.timedelta(seconds=1)), None),
        "a statement about another certificate": (_proof(w, alice, cert=bob.cert), None),
        "the certificate sent is not the one the statement names": (_proof(w, alice), bob.cert),
    }


CASES = ["no proof", "a statement without its signature", "a signature without its statement",
         "a statement that is not one", "signed by another person's card", "another key naming the card's certificate",
         "the statement changed after it was signed", "a statement for another station",
         "a statement for another organisation", "a stale statement", "a statement from the future",
         "a statement about another certificate", "the certificate sent is not the one the statement names"]


@pytest.mark.parametrize("case", CASES)
def test_a_card_without_a_good_proof_is_refused(w, sessions, case, caplog):
    cases = _cases(w)
    assert set(cases) == set(CASES)
    proof, cert = cases[case]
    caplog.set_level(logging.INFO, logger="server.kiosk")
    _refused(w, sessions, w.signers["alice"], proof, cert=cert)
    assert "card session refused" in caplog.text  # the log says why, the station is told nothing


def test_the_time_window_is_two_minutes_either_way(w, sessions):
    alice = w.signers["alice"]
    assert dt.timedelta(minutes=2) == PROOF_WINDOW
    second = dt.timedelta(seconds=1)
    for skew in (second - PROOF_WINDOW, PROOF_WINDOW - second):  # a second inside the window: accepted
        _open(w, sessions, alice, _proof(w, alice, at=w.clock.now() + skew))
    proof = _proof(w, alice)
    w.clock.advance(PROOF_WINDOW.total_seconds() + 1)  # sent too late: the server's clock moved on
    _refused(w, sessions, alice, proof)


def test_a_proof_opens_one_session_only(w, sessions):
    alice = w.signers["alice"]
    proof = _proof(w, alice)
    opened = _open(w, sessions, alice, proof)
    _refused(w, sessions, alice, proof)  # replayed at once
    assert sessions.close(_station(w), opened.session_id)
    _refused(w, sessions, alice, proof)  # replayed after the session ended
    w.clock.advance(30)
    _refused(w, sessions, alice, proof)  # still remembered within its window (and refused by its time after)
    # the same statement with a new signature (ECDSA signs differently each time) is the same proof
    _refused(w, sessions, alice, (proof[0], sign_detached(io.BytesIO(proof[0]), alice.signer())))
    _open(w, sessions, alice, _proof(w, alice))  # a new proof opens a new session


def test_the_replay_store_forgets_a_proof_only_after_its_time_is_long_past(w, sessions):
    alice = w.signers["alice"]
    proof = _proof(w, alice)
    _open(w, sessions, alice, proof)
    key = hashlib.sha256(proof[0]).hexdigest()

    def kept() -> bool:
        return w.store.query_one("SELECT statement_hash FROM kiosk_card_proofs WHERE statement_hash = ?",
                                 (key,)) is not None

    w.clock.advance(PROOF_WINDOW.total_seconds() * 2 - 1)
    _open(w, sessions, alice, _proof(w, alice))  # each open forgets the proofs past their time and a window more
    assert kept()
    w.clock.advance(2)
    _open(w, sessions, alice, _proof(w, alice))
    assert not kept()
    _refused(w, sessions, alice, proof)  # forgotten, and refused by its time


def test_a_person_of_another_organisation_is_refused_even_with_a_good_proof(w, sessions):
    dave = w.signers["dave"]  # of "Other Co"; the station is Acme's
    _refused(w, sessions, dave, _proof(w, dave))


def test_the_second_migration_adds_the_replay_store_to_a_first_version_database(tmp_path):
    from server.store import open_store

    store = open_store(str(tmp_path / "v1.db"))
    assert store.migrate("kiosk", MIGRATIONS[:1]) == 1
    row = store.query_one("SELECT version FROM schema_versions WHERE component = 'kiosk'")
    assert row is not None and row["version"] == 1
    assert store.migrate("kiosk", MIGRATIONS) == 2
    store.insert("kiosk_card_proofs", {"statement_hash": "a" * 64, "org_id": "o", "station": "s",
                                       "expires_at": "2030-01-01T00:00:00.000000Z"})
    from server.store import IntegrityError

    with pytest.raises(IntegrityError):
        store.insert("kiosk_card_proofs", {"statement_hash": "a" * 64, "org_id": "o", "station": "s",
                                           "expires_at": "2030-01-01T00:00:00.000000Z"})
    store.close()


# -- the statement itself (signet.cardproof) ------------------------------------------------------------------------
def test_a_statement_reads_back_as_written():
    at = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    data = cardproof.statement("org_1", "lobby-1", b"certificate", at=at, nonce=bytes(range(16)))
    assert data == (b"signet-card-session-v1\norg_1\nlobby-1\n" + hashlib.sha256(b"certificate").hexdigest().encode()
                    + b"\n2030-01-02T03:04:05.678Z\n000102030405060708090a0b0c0d0e0f")
    s = cardproof.parse(data)
    assert (s.org_id, s.station, s.time, s.nonce) == ("org_1", "lobby-1", at.replace(microsecond=678000),
                                                      bytes(range(16)).hex())
    assert len(cardproof.parse(cardproof.statement("o", "s", b"c")).nonce) == 32  # 16 random bytes by default


GOOD = cardproof.Statement("org_1", "lobby-1", "ab" * 32, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "cd" * 16)


@pytest.mark.parametrize("data", [
    b"",
    GOOD.encode() + b"\n",  # a final newline
    GOOD.encode().replace(b"v1", b"v2", 1),
    GOOD.encode().replace(b"\n", b"\r\n"),
    GOOD.encode().replace(b"org_1", b"org 1"),
    GOOD.encode().replace(b"lobby-1", b"lobby/1"),
    GOOD.encode().replace(b"ab" * 32, b"AB" * 32),  # hex is lowercase
    GOOD.encode().replace(b"ab" * 32, b"ab" * 31),
    GOOD.encode().replace(b"2030-01-01T00:00:00.000Z", b"2030-02-30T00:00:00.000Z"),
    GOOD.encode().replace(b"2030-01-01T00:00:00.000Z", b"2030-01-01T00:00:00Z"),
    GOOD.encode().replace(b"2030-01-01T00:00:00.000Z", b"2030-01-01T00:00:00.000+00:00"),
    GOOD.encode().replace(b"cd" * 16, b"cd" * 15),  # 15 random bytes are too few
    GOOD.encode().replace(b"cd" * 16, b"cd" * 65),
    GOOD.encode().replace(b"lobby-1", "大堂".encode()),
    b"\n".join(GOOD.encode().split(b"\n")[:5]),
    GOOD.encode().replace(b"cd" * 16, b"cd" * 64) + b"x" * 200,
], ids=lambda d: repr(d[:0]) if not d else None)
def test_anything_else_is_not_a_statement(data):
    assert cardproof.parse(GOOD.encode()) == GOOD
    with pytest.raises(cardproof.BadStatement):
        cardproof.parse(data)


def test_statement_fields_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GOOD.nonce = "00"  # type: ignore[misc]
