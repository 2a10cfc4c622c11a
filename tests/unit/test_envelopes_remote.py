"""Remote signing on a real store: a recipient whose signing method is remote has the server sign with the key held
for them (here a software key behind the token interface, certified with the remote-signing policy and marker, as
server.remotekeys certifies a server-token key), activated by a code bound to one revision hash and spent once;
the revision goes through the same acceptance checks as a submitted one; every refusal is journalled."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from formats import TokenSigner, verify_pdf
from formats.policy import DEFAULT_REMOTE_POLICY, DEFAULT_SIGNING_POLICY, REMOTE_KEY_MARKER
from formats.revision import check_detached_signature
from server.envelopes import (
    DocumentInput,
    EnvelopeService,
    EnvelopeState,
    RecipientInput,
    RecipientState,
    SignatureField,
    SigningMethod,
)
from server.errors import FailedPrecondition, NotFound, Unauthenticated

from .test_envelopes_world import CONTRACT, PHONES, S, Signer, World, make_world

PDF = "application/pdf"
REMOTE = (DEFAULT_REMOTE_POLICY, REMOTE_KEY_MARKER)


class Keyring:
    """The remote keys of people (what server.remotekeys.RemoteKeys answers), by person id."""

    def __init__(self) -> None:
        self.keys: dict[str, Signer] = {}
        self.used: list[str] = []

    def signer(self, person_id: str) -> TokenSigner:
        s = self.keys.get(person_id)
        if s is None:
            raise FailedPrecondition("no remote key", reason="REMOTE_KEY_MISSING")
        self.used.append(person_id)
        return s.signer()


@pytest.fixture(name="w")
def remote_world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.keyring = Keyring()  # type: ignore[attr-defined]
    w.svc = EnvelopeService(w.store, w.blobs, w.identity, w.outbox, rules=w.rules, clock=w.clock,
                            remote_keys=w.keyring)  # type: ignore[attr-defined]
    w.keyring.keys[w.people["carol"].id] = w.certify("carol", policies=REMOTE)  # type: ignore[attr-defined]
    return w


def _sent(w: World, recipients, documents=None, fields: bool = False):
    specs = [RecipientInput(w.people[n].id, S, order, method,
                            SignatureField(1, 56, 56 + 80 * i, 276, 116 + 80 * i) if fields else None)
             for i, (n, order, method) in enumerate(recipients)]
    env = w.svc.create(w.me("alice"), title="Remote lease", recipients=specs,
                       documents=documents or [DocumentInput("contract.pdf", PDF, CONTRACT)])
    return w.svc.send(w.me("alice"), env.id)


def _code(w: World, env, name: str, doc: int = 0):
    w.deliver()
    d = w.svc.get_document(w.me(name), env.id, env.documents[doc].id).document
    challenge = w.svc.start_signing(w.me(name), env.id, d.id, d.current_sha256)
    return d, w.code(name), challenge.code_id


def _state(w: World, env_id: str) -> tuple:
    env, rcpts, revisions, blobs = w.snapshot(env_id)
    return env, rcpts, revisions, blobs


def _refused(w: World, env_id: str, error: type[Exception], reason: str, call) -> None:
    before = _state(w, env_id)
    with pytest.raises(error) as e:
        call()
    assert getattr(e.value, "reason", None) == reason
    assert _state(w, env_id) == before
    last = w.svc.list_events(w.me("alice"), env_id, page_size=500)[-1]
    assert last.type == "refused" and last.detail["reason"] == reason


def test_alice_signs_with_her_token_carol_remotely_and_the_pdf_verifies(w: World) -> None:
    env = _sent(w, [("alice", 1, SigningMethod.TOKEN), ("carol", 2, SigningMethod.REMOTE)], fields=True)
    env = w.sign(env, "alice")
    doc, code, code_id = _code(w, env, "carol")
    done = w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id,
                               idempotency_key="carol-1")
    carol = next(r for r in done.recipients if r.person_id == w.people["carol"].id)
    assert done.state is EnvelopeState.COMPLETED and carol.state is RecipientState.SIGNED
    assert carol.certificate_serial == w.keyring.keys[w.people["carol"].id].serial  # type: ignore[attr-defined]
    events = w.svc.list_events(w.me("alice"), env.id, page_size=200)
    types = [e.type for e in events]
    assert types.count("activated") == 1 and types.index("activated") < types.index("completed")
    activated = next(e for e in events if e.type == "activated")
    assert activated.detail["revision_sha256"] == doc.current_sha256 and activated.detail["code_id"] == code_id
    assert code not in str(activated.detail)
    signed = [e for e in events if e.type == "signed"]
    assert [e.detail["method"] for e in signed] == ["token", "remote"]
    assert signed[1].detail["field"] == carol.field_name
    # a retry answers the first answer; nothing is signed twice
    again = w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id,
                                idempotency_key="carol-1")
    assert again == done and w.events(env.id).count("activated") == 1
    final = w.svc.get_document(w.me("alice"), env.id, doc.id).content
    out = w.tmp / "final.pdf"
    out.write_bytes(final)
    report = verify_pdf(out, [w.root.root_der], revocation="offline")
    assert report.valid, report.reasons()
    assert [(s.signing_policy, s.remote_key) for s in report.signatures] == [
        (DEFAULT_SIGNING_POLICY, False), (DEFAULT_REMOTE_POLICY, True)]
    assert report.signatures[1].field_name == carol.field_name


def test_other_files_get_a_detached_signature_made_by_the_server(w: World) -> None:
    terms = b"plain terms of the lease\n"
    env = _sent(w, [("carol", 1, SigningMethod.REMOTE)],
                documents=[DocumentInput("terms.txt", "text/plain", terms)])
    doc, code, code_id = _code(w, env, "carol")
    done = w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert done.state is EnvelopeState.COMPLETED
    [sig] = w.svc.get_document(w.me("alice"), env.id, doc.id).signatures
    verdict = check_detached_signature(terms, sig, trust_roots=[w.root.root_der])
    assert verdict.accepted, verdict.message


def test_refusals_change_nothing_and_wrong_guesses_do_not_spend_the_code(w: World) -> None:
    two = [DocumentInput("a.pdf", PDF, CONTRACT), DocumentInput("b.pdf", PDF, CONTRACT + b"\n")]
    env = _sent(w, [("bob", 1, SigningMethod.TOKEN), ("carol", 1, SigningMethod.REMOTE)], documents=two)
    doc, code, code_id = _code(w, env, "carol")
    other = env.documents[1]
    me = w.me("carol")
    wrong = "000000" if code != "000000" else "111111"
    _refused(w, env.id, Unauthenticated, "OTP_INCORRECT", lambda: w.svc.sign_remotely(
        me, env.id, doc.id, doc.current_sha256, code=wrong, code_id=code_id))
    # the code is bound to document a's hash: not to another hash, nor to another document
    _refused(w, env.id, FailedPrecondition, "REVISION_CHANGED", lambda: w.svc.sign_remotely(
        me, env.id, doc.id, hashlib.sha256(b"another revision").hexdigest(), code=code, code_id=code_id))
    _refused(w, env.id, Unauthenticated, "OTP_NOT_FOUND", lambda: w.svc.sign_remotely(
        me, env.id, other.id, other.current_sha256, code=code, code_id=code_id))
    # a token recipient cannot sign remotely, a remote one cannot submit a revision of their own
    _refused(w, env.id, FailedPrecondition, "TOKEN_RECIPIENT", lambda: w.svc.sign_remotely(
        w.me("bob"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id))
    _refused(w, env.id, FailedPrecondition, "REMOTE_RECIPIENT", lambda: w.svc.submit_signature(
        me, env.id, doc.id, content=w.sign_pdf(CONTRACT, "carol", None), code=code, code_id=code_id))
    assert "activated" not in w.events(env.id)
    # none of that spent the code: it activates the key for document a, once
    env = w.svc.sign_remotely(me, env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert env.documents[0].signatures == 1 and env.documents[1].signatures == 0
    with pytest.raises(FailedPrecondition) as e:  # replayed: the document is signed, its hash is gone
        w.svc.sign_remotely(me, env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert e.value.reason == "DOCUMENT_ALREADY_SIGNED"


def test_an_activation_is_spent_even_when_the_revision_is_refused(w: World) -> None:
    """The key signed for that hash once: a refused result does not give the code back (OTP_USED after)."""
    env = _sent(w, [("carol", 1, SigningMethod.REMOTE)])
    carol = w.people["carol"].id
    kept = w.keyring.keys[carol]  # type: ignore[attr-defined]
    w.keyring.keys[carol] = w.signers["bob"]  # type: ignore[attr-defined]  # a certificate of someone else
    doc, code, code_id = _code(w, env, "carol")
    with pytest.raises(FailedPrecondition) as e:
        w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert e.value.reason == "SIGNER_NOT_RECIPIENT"
    assert w.events(env.id)[-2:] == ["activated", "refused"]
    w.keyring.keys[carol] = kept  # type: ignore[attr-defined]
    with pytest.raises(Unauthenticated) as e2:
        w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert e2.value.reason == "OTP_USED"
    doc, code, code_id = _code(w, env, "carol")  # a new code: a new activation
    done = w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert done.state is EnvelopeState.COMPLETED and w.events(env.id).count("activated") == 2


def test_no_code_without_a_usable_key_and_strangers_see_nothing(w: World) -> None:
    env = _sent(w, [("bob", 1, SigningMethod.REMOTE)])  # Bob has no remote key
    doc = env.documents[0]
    with pytest.raises(FailedPrecondition) as e:
        w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256)
    assert e.value.reason == "REMOTE_KEY_MISSING"
    assert not [x for x in w.outbox.list(to=PHONES["bob"]) if x.topic == "otp.envelope-sign"]
    # Carol, a remote signer elsewhere, is a stranger to this envelope
    with pytest.raises(NotFound):
        w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code="123456", code_id="x")
    assert w.keyring.used == []  # type: ignore[attr-defined]


def test_codes_never_reach_the_log(w: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = _sent(w, [("carol", 1, SigningMethod.REMOTE)])
    doc, code, code_id = _code(w, env, "carol")
    w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code, code_id=code_id)
    assert "activated" in caplog.text and code not in caplog.text
