"""Signing an envelope on a real store: codes bound to one revision, routing with parallel groups, completion,
and every refusal leaving the envelope, its revisions, the blob store and the code exactly as they were."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from formats.policy import DEFAULT_REMOTE_POLICY
from formats.samplepdf import contract_pdf_bytes
from server.ca import db
from server.envelopes import DocumentInput, EnvelopeState, RecipientInput, RecipientState, SigningMethod
from server.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated

from .test_envelopes_world import CONTRACT, PHONES, A, C, S, World, make_world, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"


def _sent(w: World, recipients, **kw):
    env = w.create("alice", recipients, **kw)
    return w.svc.send(w.me("alice"), env.id)


def _rcpt(env, w: World, name: str):
    return next(r for r in env.recipients if r.person_id == w.people[name].id)


def test_a_code_is_bound_to_the_current_revision_and_goes_to_the_phone(w: World) -> None:
    env = _sent(w, [("bob", S, 1)])
    doc = env.documents[0]
    challenge = w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256.upper())
    [entry] = [e for e in w.outbox.list(to=PHONES["bob"], unread_only=True) if e.topic == "otp.envelope-sign"]
    body = w.outbox.read(entry.id).body
    assert doc.current_sha256[:16] in body and "contract.pdf" in body
    assert challenge.delivery.channel == "outbox"
    with pytest.raises(FailedPrecondition) as e:  # only the revision that is current
        w.svc.start_signing(w.me("bob"), env.id, doc.id, "0" * 64)
    assert e.value.reason == "REVISION_CHANGED"
    assert "code_sent" in w.events(env.id)


def test_one_signer_signs_and_the_envelope_completes(w: World) -> None:
    env = _sent(w, [("bob", S, 1)], fields=True)
    w.clock.advance(1.5)
    done = w.sign(env, "bob")
    bob = _rcpt(done, w, "bob")
    now = w.clock.now()
    assert done.state is EnvelopeState.COMPLETED
    assert done.completed_at == now.replace(microsecond=now.microsecond // 1000 * 1000)
    assert bob.state is RecipientState.SIGNED and bob.certificate_serial == w.signers["bob"].serial
    assert bob.viewed_at is not None and bob.signed_at == done.completed_at
    doc = done.documents[0]
    assert doc.signatures == 1 and doc.current_sha256 != doc.original_sha256 and doc.signed_by == (bob.id,)
    got = w.svc.get_document(w.me("alice"), env.id, doc.id)
    assert got.content.startswith(CONTRACT) and w.blobs.exists(doc.current_sha256)
    assert w.events(env.id) == ["created", "sent", "notified", "viewed", "code_sent", "signed", "completed"]
    # the sender and the signer hear of the completion
    w.deliver()
    topics = {(e.to.value, e.topic) for e in w.outbox.list(limit=100)}
    assert {("alice@example.com", "envelope.completed"), ("bob@example.com", "envelope.completed")} <= topics


def test_parallel_group_signs_one_after_another_and_a_stale_revision_is_refused(w: World) -> None:
    """Alice (1), then Bob and Carol in parallel (2), then Erin (3), with a copy to Dave in group 2."""
    env = _sent(w, [("alice", S, 1), ("bob", S, 2), ("carol", A, 2), ("dave", C, 2), ("erin", S, 3)], fields=True)
    states = {n: _rcpt(env, w, n).state for n in ("alice", "bob", "carol", "dave", "erin")}
    assert states == {"alice": RecipientState.NOTIFIED, "bob": RecipientState.PENDING,
                      "carol": RecipientState.PENDING, "dave": RecipientState.PENDING,
                      "erin": RecipientState.PENDING}
    with pytest.raises(FailedPrecondition) as e:  # out of routing order
        w.svc.start_signing(w.me("bob"), env.id, env.documents[0].id, env.documents[0].current_sha256)
    assert e.value.reason == "RECIPIENT_PENDING"

    env = w.sign(env, "alice")
    with pytest.raises(FailedPrecondition) as again:  # Alice is done while the envelope goes on
        w.svc.start_signing(w.me("alice"), env.id, env.documents[0].id, env.documents[0].current_sha256)
    assert again.value.reason == "RECIPIENT_SIGNED"
    group2 = {n: _rcpt(env, w, n) for n in ("bob", "carol", "dave", "erin")}
    assert [group2[n].state for n in ("bob", "carol", "dave")] == [RecipientState.NOTIFIED] * 3
    assert group2["erin"].state is RecipientState.PENDING

    # Bob and Carol both fetch revision 1 and sign it; Carol submits first
    doc = env.documents[0]
    bob_got = w.svc.get_document(w.me("bob"), env.id, doc.id)
    bob_code = w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256)
    bob_pdf = w.sign_pdf(bob_got.content, "bob", _rcpt(env, w, "bob").field_name)
    code = w.code("bob")
    env = w.sign(env, "carol")
    before = w.snapshot(env.id)
    with pytest.raises(FailedPrecondition) as e:
        w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=bob_pdf, code=code, code_id=bob_code.code_id)
    assert e.value.reason == "REVISION_CHANGED"
    assert w.snapshot(env.id) == before
    env = w.sign(env, "bob")  # fetch and sign again
    assert _rcpt(env, w, "erin").state is RecipientState.NOTIFIED
    assert _rcpt(env, w, "dave").state is RecipientState.NOTIFIED  # the copy never signs ...
    with pytest.raises(PermissionDenied) as copy:
        w.svc.start_signing(w.me("dave"), env.id, doc.id, env.documents[0].current_sha256)
    assert copy.value.reason == "COPY_RECIPIENT"
    env = w.sign(env, "erin")  # ... and does not hold up completion
    assert env.state is EnvelopeState.COMPLETED and env.documents[0].signatures == 4
    assert w.events(env.id).count("refused") == 1


def test_two_documents_a_pdf_and_a_detached_file(w: World) -> None:
    annex = b"Annex A: the crane's maintenance schedule\n" * 20
    env = _sent(w, [("bob", S, 1)], documents=[DocumentInput("contract.pdf", PDF, CONTRACT),
                                               DocumentInput("annex.txt", "text/plain", annex)])
    assert [d.pages for d in env.documents] == [3, 0]
    env = w.sign(env, "bob", 0)
    assert _rcpt(env, w, "bob").state is RecipientState.VIEWED  # one of two documents signed
    assert env.state is EnvelopeState.SENT
    with pytest.raises(FailedPrecondition) as e:
        w.svc.start_signing(w.me("bob"), env.id, env.documents[0].id, env.documents[0].current_sha256)
    assert e.value.reason == "DOCUMENT_ALREADY_SIGNED"
    env = w.sign(env, "bob", 1)
    assert env.state is EnvelopeState.COMPLETED
    got = w.svc.get_document(w.me("bob"), env.id, env.documents[1].id)
    assert got.content == annex and len(got.signatures) == 1
    assert got.document.current_sha256 == got.document.original_sha256  # detached: the bytes never change
    # the CAdES signature the envelope keeps is judged by OpenSSL too, over exactly the locked bytes
    import subprocess

    from asn1crypto import pem

    (tmp := w.tmp / "cms").mkdir()
    (tmp / "annex.txt").write_bytes(annex)
    sig = got.signatures[0]
    (tmp / "annex.p7s").write_bytes(sig)
    (tmp / "root.pem").write_bytes(pem.armor("CERTIFICATE", w.root.root_der))
    ok = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "annex.p7s"),
                         "-content", str(tmp / "annex.txt"), "-CAfile", str(tmp / "root.pem"), "-purpose", "any",
                         "-out", "/dev/null"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Verification successful" in ok.stderr, ok.stderr
    (tmp / "forged.txt").write_bytes(annex.replace(b"crane", b"train"))
    bad = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "annex.p7s"),
                          "-content", str(tmp / "forged.txt"), "-CAfile", str(tmp / "root.pem"), "-purpose", "any",
                          "-out", "/dev/null"], capture_output=True, text=True, check=False)
    assert bad.returncode != 0


# -- refusals change nothing ------------------------------------------------------------------------------------------
def _refused(w: World, env, name: str, content: bytes, *, code: str | None = None, code_id: str | None = None,
             error=FailedPrecondition) -> str:
    """Submit ``content`` as ``name``; the refusal's reason, after checking nothing changed (the code either)."""
    doc = env.documents[0]
    if code is None:
        challenge = w.svc.start_signing(w.me(name), env.id, doc.id, doc.current_sha256)
        code, code_id = w.code(name), challenge.code_id
    before = w.snapshot(env.id)
    with pytest.raises(error) as e:
        w.svc.submit_signature(w.me(name), env.id, doc.id, content=content, code=code, code_id=code_id or "")
    assert w.snapshot(env.id) == before
    events = w.svc.list_events(w.me("alice"), env.id, page_size=200)
    assert events[-1].type == "refused" and events[-1].detail["reason"] == e.value.reason
    return e.value.reason


@pytest.fixture
def bobs_turn(w: World):
    env = _sent(w, [("bob", S, 1)], fields=True)
    doc = env.documents[0]
    got = w.svc.get_document(w.me("bob"), env.id, doc.id)
    return env, got.content, _rcpt(env, w, "bob").field_name


def test_refusals_of_the_signer_certificate(w: World, bobs_turn) -> None:
    """One code for the whole test: no refusal spends it, so the right signature goes through with it at the end."""
    env, current, field = bobs_turn
    doc = env.documents[0]
    challenge = w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256)
    code = {"code": w.code("bob"), "code_id": challenge.code_id}
    soon = w.certify("bob", not_after=w.clock.now() + dt.timedelta(seconds=120))
    revoked = w.certify("bob")
    db.mark_revoked(w.store, w.rules.issuer_key_hash, int(revoked.serial, 16), "key_compromise", w.clock.now(),
                    w.clock.now())
    tries = [(w.signers["carol"], "SIGNER_NOT_RECIPIENT"),  # another person's certificate from our CA
             (w.certify("bob", record=False), "SIGNER_NOT_OURS"),  # right chain, never issued by this server
             (w.certify("bob", policies=[DEFAULT_REMOTE_POLICY]), "SIGNER_WRONG_POLICY"),  # a remote key's policy
             (revoked, "SIGNER_REVOKED")]
    for signer, reason in tries:
        assert _refused(w, env, "bob", w.sign_pdf(current, "bob", field, signer=signer), **code) == reason
    late = w.sign_pdf(current, "bob", field, signer=soon)
    w.clock.advance(180)  # the certificate ran out by the server's clock; the code (5 minutes) did not
    assert _refused(w, env, "bob", late, **code) == "SIGNER_EXPIRED"
    done = w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=w.sign_pdf(current, "bob", field), **code)
    assert done.state is EnvelopeState.COMPLETED


def test_refusals_of_the_revision(w: World, bobs_turn) -> None:
    env, current, field = bobs_turn
    good = w.sign_pdf(current, "bob", field)
    assert _refused(w, env, "bob", good + b"\n% trailing bytes after the signature\n") == "REVISION_TRAILING_BYTES"
    other = w.sign_pdf(contract_pdf_bytes("Another contract", ["X", "Y"]), "bob", field)
    assert _refused(w, env, "bob", other) == "REVISION_NOT_INCREMENTAL"
    assert _refused(w, env, "bob", w.sign_pdf(current, "bob", "Signature1")) == "REVISION_WRONG_FIELD"
    assert _refused(w, env, "bob", current + b"\n" + b"x" * 4096, error=InvalidArgument) == "REVISION_UNREADABLE"
    assert _refused(w, env, "bob", b"", error=InvalidArgument) == "CONTENT_REQUIRED"


def test_refusals_of_the_code(w: World, bobs_turn) -> None:
    env, current, field = bobs_turn
    doc = env.documents[0]
    good = w.sign_pdf(current, "bob", field)
    challenge = w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256)
    code = w.code("bob")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert _refused(w, env, "bob", good, code=wrong, code_id=challenge.code_id, error=Unauthenticated) == \
        "OTP_INCORRECT"
    attempts = w.store.query_one("SELECT attempts FROM otp_codes WHERE id = ?", (challenge.code_id,))
    assert attempts == {"attempts": 1}  # a wrong code counts, as everywhere
    # a code bound to another recipient's turn, or to nothing: not this binding's
    assert _refused(w, env, "bob", good, code=code, code_id="otp_" + "0" * 24, error=Unauthenticated) == \
        "OTP_NOT_FOUND"
    assert _refused(w, env, "bob", good, code="", code_id=challenge.code_id, error=InvalidArgument) == \
        "OTP_REQUIRED"
    done = w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=good, code=code, code_id=challenge.code_id)
    assert done.state is EnvelopeState.COMPLETED


def test_a_code_bound_to_another_revision_is_refused(w: World) -> None:
    """Carol (parallel with Bob) asks for a code for revision 0; Bob signs first; Carol signs revision 1 and
    presents her code for revision 0: not this revision's code.  A new code for revision 1 goes through."""
    env = _sent(w, [("bob", S, 1), ("carol", S, 1)], fields=True)
    doc = env.documents[0]
    early = w.svc.start_signing(w.me("carol"), env.id, doc.id, doc.current_sha256)
    early_code = w.code("carol")
    env = w.sign(env, "bob")
    current = w.svc.get_document(w.me("carol"), env.id, doc.id).content
    signed = w.sign_pdf(current, "carol", _rcpt(env, w, "carol").field_name)
    assert _refused(w, env, "carol", signed, code=early_code, code_id=early.code_id, error=Unauthenticated) == \
        "OTP_NOT_FOUND"
    fresh = w.svc.start_signing(w.me("carol"), env.id, doc.id, env.documents[0].current_sha256)
    done = w.svc.submit_signature(w.me("carol"), env.id, doc.id, content=signed, code=w.code("carol"),
                                  code_id=fresh.code_id)
    assert done.state is EnvelopeState.COMPLETED


def test_a_replayed_code_is_refused(w: World) -> None:
    """A used code presented again -- by another recipient, or for another document -- is bound to what it was
    issued for, and a used one is used: it never authorises a second signature."""
    doc_b = DocumentInput("b.pdf", PDF, contract_pdf_bytes("Second", ["A", "B"]))
    env = _sent(w, [("bob", S, 1), ("carol", S, 1)],
                documents=[DocumentInput("a.pdf", PDF, CONTRACT), doc_b])
    env = w.sign(env, "bob", 0)
    [used] = [r["id"] for r in w.store.query("SELECT id FROM otp_codes WHERE status = 'used' AND purpose = ?",
                                             ("envelope-sign",))]
    used_code = w.last_code
    for name, index in (("bob", 1), ("carol", 0)):
        got = w.svc.get_document(w.me(name), env.id, env.documents[index].id)
        signed = w.sign_pdf(got.content, name, None)
        before = w.snapshot(env.id)
        with pytest.raises(Unauthenticated) as e:
            w.svc.submit_signature(w.me(name), env.id, got.document.id, content=signed, code=used_code, code_id=used)
        assert e.value.reason == "OTP_NOT_FOUND" and w.snapshot(env.id) == before
    assert w.store.query_one("SELECT status FROM otp_codes WHERE id = ?", (used,)) == {"status": "used"}


def test_the_code_is_spent_once_and_an_idempotent_retry_returns_the_first_answer(w: World) -> None:
    env = _sent(w, [("bob", S, 1)])
    doc = env.documents[0]
    got = w.svc.get_document(w.me("bob"), env.id, doc.id)
    challenge = w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256)
    code = w.code("bob")
    signed = w.sign_pdf(got.content, "bob", None)
    first = w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=signed, code=code,
                                   code_id=challenge.code_id, idempotency_key="sign-1")
    again = w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=signed, code=code,
                                   code_id=challenge.code_id, idempotency_key="sign-1")
    assert again == first and w.events(env.id).count("signed") == 1
    with pytest.raises(InvalidArgument) as e:
        w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=signed + b" ", code=code,
                               code_id=challenge.code_id, idempotency_key="sign-1")
    assert e.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(FailedPrecondition):  # without the key: a second signature is no retry
        w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=signed, code=code, code_id=challenge.code_id)


def test_remote_signers_are_accepted_in_the_model_and_refused_at_signing(w: World) -> None:
    env = w.svc.create(w.me("alice"), title="Remote", documents=[DocumentInput("c.pdf", PDF, CONTRACT)],
                       recipients=[RecipientInput(w.people["bob"].id, S, 1, SigningMethod.REMOTE)])
    env = w.svc.send(w.me("alice"), env.id)
    assert env.recipients[0].signing_method is SigningMethod.REMOTE
    with pytest.raises(FailedPrecondition) as e:
        w.svc.start_signing(w.me("bob"), env.id, env.documents[0].id, env.documents[0].current_sha256)
    assert e.value.reason == "REMOTE_SIGNING_UNAVAILABLE"


def test_only_the_recipient_signs_and_strangers_see_nothing(w: World) -> None:
    env = _sent(w, [("bob", S, 1)])
    doc = env.documents[0]
    for name, error in (("alice", PermissionDenied), ("carol", NotFound), ("dave", NotFound)):
        with pytest.raises(error):
            w.svc.start_signing(w.me(name), env.id, doc.id, doc.current_sha256)
        with pytest.raises(error):
            w.svc.submit_signature(w.me(name), env.id, doc.id, content=CONTRACT, code="123456")
    with pytest.raises(PermissionDenied):
        w.svc.start_signing(w.acme_op, env.id, doc.id, doc.current_sha256)
    # strangers leave no trace; the sender's attempt is journalled as a refusal
    assert w.events(env.id).count("refused") == 1


def test_codes_and_contents_never_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    w = make_world(tmp_path)
    env = _sent(w, [("bob", S, 1)])
    w.sign(env, "bob")
    codes = [r["id"] for r in w.store.query("SELECT id FROM otp_codes")]
    assert codes
    text = caplog.text
    bodies = [w.outbox.read(e.id).body for e in w.outbox.list(limit=200)]
    for body in bodies:
        for code in __import__("re").findall(r"\b\d{6}\b", body):
            assert code not in text
    assert "Envelope Unit Agreement" not in text and "Alice Envelope" not in text
