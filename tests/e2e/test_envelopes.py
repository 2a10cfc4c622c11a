"""Envelopes against a real `signet-server` process: people registered, approved and enrolled with keys on their
own SoftHSM tokens; each calls EnvelopeService over mutual TLS with their agent's certificate; codes are read
from the outbox; every signature is made in-process on the signer's token (formats.sign_pdf, incremental);
the final PDF is judged by pdfsig against an NSS database that trusts only the Signet signing root.

Every refusal is checked to leave the envelope as it was (same version, same revisions) and to be journalled
as a ``refused`` event; a refused submission's code stays usable, so the correct revision goes through with it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from formats import PdfSignOptions, TokenSigner, sign_pdf
from formats.samplepdf import make_contract_pdf
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg
from tests.pki import make_nssdb, pdfsig

from .authz_world import Enrolled, enroll_in_process
from .server_harness import Running, channel, latest_code, prc_id, reason, register_verified, start_running

pytestmark = pytest.mark.e2e

PEOPLE = {"alice": ("19900307", "457", "+8613800138031"), "bob": ("19850511", "133", "+8613800138032"),
          "carol": ("19780101", "248", "+8613800138033")}
FIELD = pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)


@dataclass
class Party:
    name: str
    person_id: str
    phone: str
    enrolled: Enrolled
    token: Any  # hsm.Token, logged in


@dataclass
class World:
    r: Running
    base: Path
    parties: dict[str, Party]
    nssdb: Path
    codes: list[str]

    def stub(self, name: str) -> tuple[grpc.Channel, pbg.EnvelopeServiceStub]:
        ch = channel(self.r.env, self.parties[name].enrolled.agent)
        return ch, pbg.EnvelopeServiceStub(ch)


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    from hsm import Hsm

    base = tmp_path_factory.mktemp("envelopes")
    tok = make_token("env-srv")
    r = start_running(base, tok.label, tok.pin)
    parties: dict[str, Party] = {}
    codes: list[str] = []
    try:
        with channel(r.env, r.op_a) as op:
            ids = {n: register_verified(r, op, f"{n.title()} Envelope", prc_id(birth, seq), phone,
                                        f"{n}@example.com") for n, (birth, seq, phone) in PEOPLE.items()}
        for name, (_, _, phone) in PEOPLE.items():
            t = make_token(name)
            enrolled = enroll_in_process(r, ids[name], phone, t, base / f"{name}-agent")
            token = Hsm(pin_state=base / f"{name}-signing-pins.json").token(serial=t.serial)
            token.login(t.pin)
            parties[name] = Party(name, ids[name], phone, enrolled, token)
        nssdb = make_nssdb(base / "nssdb", r.env.signing_root.read_bytes())
        yield World(r, base, parties, nssdb, codes)
    finally:
        for p in parties.values():
            p.token.logout()
        assert r.server.stop() == 0
    log = r.server.log
    assert codes and not [c for c in codes if re.search(rf"\b{c}\b", log)]  # codes never reach the log
    assert "Envelope Test Lease" not in log  # nor document contents


# -- one recipient's turn, step by step ---------------------------------------------------------------------------
def call(w: World, name: str, method: str, request: Any) -> Any:
    ch, stub = w.stub(name)
    with ch:
        return getattr(stub, method)(request, timeout=60)


def refused(w: World, name: str, method: str, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(w, name, method, request)
    return e.value


def contract(w: World, title: str) -> bytes:
    path = w.base / f"{hashlib.sha256(title.encode()).hexdigest()[:8]}.pdf"
    make_contract_pdf(path, title, ["Alice Envelope", "Bob Envelope", "Carol Envelope"], pages=3)
    return path.read_bytes()


def create_and_send(w: World, title: str, recipients: list[tuple[str, int]]) -> pb.Envelope:
    specs = [pb.RecipientSpec(person_id=w.parties[n].person_id, role=pb.RECIPIENT_ROLE_SIGNER, routing_order=o,
                              signing_method=pb.SIGNING_METHOD_TOKEN, field=FIELD) for n, o in recipients]
    draft = call(w, "alice", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title, message="Please sign", tags=["lease"],
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=contract(w, title))],
        recipients=specs)).envelope
    assert draft.state == pb.ENVELOPE_STATE_DRAFT and draft.documents[0].pages == 3
    assert not draft.HasField("sent_at")
    sent = call(w, "alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=draft.id,
                                                                   idempotency_key=f"send {title}")).envelope
    assert sent.state == pb.ENVELOPE_STATE_SENT and sent.HasField("sent_at")
    assert sent.sent_at.nanos % 1_000_000 == 0  # milliseconds, as recorded
    assert sent.documents[0].original_sha256 == hashlib.sha256(contract(w, title)).hexdigest()
    return notices_delivered(w, sent)


def recipient(env: pb.Envelope, w: World, name: str) -> pb.Recipient:
    return next(r for r in env.recipients if r.person_id == w.parties[name].person_id)


def notices_delivered(w: World, env: pb.Envelope, timeout: float = 20) -> pb.Envelope:
    """The envelope once every recipient whose turn came has had their notice handed to the channel (the server's
    dispatcher does it just after the change commits): each recipient reads their notice before acting, and the
    envelope's version no longer moves under a test that compares it."""
    deadline = time.monotonic() + timeout
    while True:
        env = call(w, "alice", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=env.id)).envelope
        waiting = [r.id for r in env.recipients
                   if r.state == pb.RECIPIENT_STATE_NOTIFIED and not r.HasField("notified_at")]
        if not waiting:
            return env
        assert time.monotonic() < deadline, f"notices not delivered: {waiting}"
        time.sleep(0.05)


@dataclass
class Turn:
    """A recipient's signing turn: the revision fetched, the code sent for it, the signed revision made."""

    envelope_id: str
    document_id: str
    current: bytes
    code: str
    code_id: str
    signed: bytes

    def submit(self, content: bytes | None = None, code: str | None = None, code_id: str | None = None,
               key: str = "") -> pb.SubmitSignatureRequest:
        return pb.SubmitSignatureRequest(idempotency_key=key, envelope_id=self.envelope_id,
                                         document_id=self.document_id, one_time_code=code or self.code,
                                         code_id=code_id or self.code_id,
                                         content=self.signed if content is None else content)


def sign_revision(w: World, data: bytes, name: str, field_name: str, *, signer: str | None = None) -> bytes:
    """``data`` plus one incremental PAdES signature by ``signer``'s (default ``name``'s) token key."""
    who = w.parties[signer or name]
    src, out = w.base / f"{name}-in.pdf", w.base / f"{name}-out.pdf"
    src.write_bytes(data)
    sign_pdf(src, out, TokenSigner(who.token, who.enrolled.key_id),
             PdfSignOptions(field_name=field_name, visible=True, page=0, box=(56, 56, 276, 116)))
    return out.read_bytes()


def take_turn(w: World, env: pb.Envelope, name: str) -> Turn:
    """The notice, inbox, fetch (viewed), a code for exactly this revision (read from the outbox), a signature on
    the token."""
    env = notices_delivered(w, env)
    inbox = call(w, name, "ListEnvelopes", pb.ListEnvelopesRequest(view="inbox")).envelopes
    assert env.id in [e.id for e in inbox]
    doc = env.documents[0]
    got = call(w, name, "GetDocument", pb.GetDocumentRequest(envelope_id=env.id, document_id=doc.id))
    assert hashlib.sha256(got.content).hexdigest() == got.document.current_sha256
    challenge = call(w, name, "StartSigning", pb.StartSigningRequest(
        envelope_id=env.id, document_id=doc.id, revision_sha256=got.document.current_sha256)).challenge
    assert challenge.code_id and challenge.channel == "outbox"
    code = latest_code(w.r.env, w.parties[name].phone)
    w.codes.append(code)
    field = f"signet-{recipient(env, w, name).id}"
    return Turn(env.id, doc.id, got.content, code, challenge.code_id, sign_revision(w, got.content, name, field))


def state_of(w: World, envelope_id: str) -> tuple:
    env = call(w, "alice", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
    return env.version, env.state, [(d.current_sha256, d.signatures) for d in env.documents], \
        [(r.state, r.certificate_serial) for r in env.recipients]


def unchanged_refusal(w: World, name: str, request: pb.SubmitSignatureRequest) -> tuple[grpc.StatusCode, str]:
    before = state_of(w, request.envelope_id)
    e = refused(w, name, "SubmitSignature", request)
    assert state_of(w, request.envelope_id) == before
    last = call(w, "alice", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(envelope_id=request.envelope_id,
                                                                               page_size=200)).events[-1]
    assert last.type == "refused" and reason(e) in last.detail_json
    return e.code(), reason(e)


def final_pdf(w: World, env: pb.Envelope, name: str) -> Path:
    got = call(w, "alice", "GetDocument", pb.GetDocumentRequest(envelope_id=env.id, document_id=env.documents[0].id))
    path = w.base / f"{name}.pdf"
    path.write_bytes(got.content)
    return path


def pdfsig_blocks(w: World, path: Path) -> list[str]:
    """pdfsig's text per signature (it exits 0 whatever it finds: read the text)."""
    verdict = pdfsig(path, w.nssdb)
    return re.split(r"\nSignature #\d+:", verdict.text)[1:]


# -- the journeys -------------------------------------------------------------------------------------------------
def test_alice_sends_bob_signs_with_his_token(world: World) -> None:
    w = world
    env = create_and_send(w, "Envelope Test Lease One", [("bob", 1)])
    bob = recipient(env, w, "bob")  # notified when the notice was handed to the outbox, just after the send
    assert bob.state == pb.RECIPIENT_STATE_NOTIFIED and bob.notified_at.ToDatetime() >= env.sent_at.ToDatetime()
    assert bob.notified_at.nanos % 1_000_000 == 0
    turn = take_turn(w, env, "bob")
    assert recipient(call(w, "bob", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=env.id)).envelope, w,
                     "bob").state == pb.RECIPIENT_STATE_VIEWED
    done = call(w, "bob", "SubmitSignature", turn.submit(key="bob signs one")).envelope
    assert done.state == pb.ENVELOPE_STATE_COMPLETED and done.HasField("completed_at")
    bob = recipient(done, w, "bob")
    assert bob.state == pb.RECIPIENT_STATE_SIGNED and bob.certificate_serial == w.parties["bob"].enrolled.signing_serial
    assert done.documents[0].signatures == 1
    again = call(w, "bob", "SubmitSignature", turn.submit(key="bob signs one")).envelope  # a retry: the same answer
    assert again == done
    e = refused(w, "bob", "SubmitSignature", turn.submit())  # no retry: a second signature
    assert (e.code(), reason(e)) == (grpc.StatusCode.FAILED_PRECONDITION, "ENVELOPE_COMPLETED")
    events = call(w, "bob", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(envelope_id=env.id)).events
    # the platform seal's "sealed" comes after "completed" whenever its background pass runs
    assert [x.type for x in events if x.type != "sealed"] == ["created", "sent", "notified", "viewed", "code_sent",
                                                              "signed", "completed", "refused"]
    [block] = pdfsig_blocks(w, final_pdf(w, done, "one"))
    assert "Signature is Valid." in block and "Certificate is Trusted." in block
    assert "Total document signed" in block and "Bob Envelope" in block


def test_two_signers_in_sequence_and_refusals_that_change_nothing(world: World) -> None:
    w = world
    env = create_and_send(w, "Envelope Test Lease Two", [("alice", 1), ("bob", 2)])
    assert [recipient(env, w, n).state for n in ("alice", "bob")] == [pb.RECIPIENT_STATE_NOTIFIED,
                                                                      pb.RECIPIENT_STATE_PENDING]
    # out of routing order: Bob before Alice
    doc = env.documents[0]
    e = refused(w, "bob", "StartSigning", pb.StartSigningRequest(envelope_id=env.id, document_id=doc.id,
                                                                  revision_sha256=doc.current_sha256))
    assert (e.code(), reason(e)) == (grpc.StatusCode.FAILED_PRECONDITION, "RECIPIENT_PENDING")
    early = Turn(env.id, doc.id, b"", "123456", "", sign_revision(w, contract(w, "Envelope Test Lease Two"), "bob",
                                                                  f"signet-{recipient(env, w, 'bob').id}"))
    assert unchanged_refusal(w, "bob", early.submit()) == (grpc.StatusCode.FAILED_PRECONDITION, "RECIPIENT_PENDING")

    alice_turn = take_turn(w, env, "alice")
    env = call(w, "alice", "SubmitSignature", alice_turn.submit()).envelope
    assert recipient(env, w, "alice").state == pb.RECIPIENT_STATE_SIGNED
    assert recipient(env, w, "bob").state == pb.RECIPIENT_STATE_NOTIFIED  # his group started

    turn = take_turn(w, env, "bob")
    bob_field = f"signet-{recipient(env, w, 'bob').id}"
    fp, un = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED
    # a revision signed with another person's certificate (Alice's token key, our CA, right field)
    by_alice = sign_revision(w, turn.current, "bob", bob_field, signer="alice")
    assert unchanged_refusal(w, "bob", turn.submit(by_alice)) == (fp, "SIGNER_NOT_RECIPIENT")
    # a replayed code: Alice's, used for her signature (bound to her and to the revision before)
    assert unchanged_refusal(w, "bob", turn.submit(code=alice_turn.code, code_id=alice_turn.code_id)) == \
        (un, "OTP_NOT_FOUND")
    # a revision that is not an incremental update of the current one (qpdf rewrote it)
    rewritten = w.base / "rewritten.pdf"
    (w.base / "bob-signed.pdf").write_bytes(turn.signed)
    subprocess.run(["qpdf", str(w.base / "bob-signed.pdf"), str(rewritten)], check=False, capture_output=True)
    assert unchanged_refusal(w, "bob", turn.submit(rewritten.read_bytes())) == (fp, "REVISION_NOT_INCREMENTAL")
    # bytes after the signature
    assert unchanged_refusal(w, "bob", turn.submit(turn.signed + b"\n%% appended\n")) == (fp,
                                                                                         "REVISION_TRAILING_BYTES")
    # none of this spent Bob's code: the right revision goes through with it
    done = call(w, "bob", "SubmitSignature", turn.submit()).envelope
    assert done.state == pb.ENVELOPE_STATE_COMPLETED and done.documents[0].signatures == 2
    assert [recipient(done, w, n).certificate_serial for n in ("alice", "bob")] == [
        w.parties["alice"].enrolled.signing_serial, w.parties["bob"].enrolled.signing_serial]
    first, last = pdfsig_blocks(w, final_pdf(w, done, "two"))
    for block in (first, last):
        assert "Signature is Valid." in block and "Certificate is Trusted." in block
    assert "Alice Envelope" in first and "Bob Envelope" in last and "Total document signed" in last


def test_a_parallel_group_signs_one_after_another(world: World) -> None:
    """Bob and Carol in one group: both fetch revision 1; Carol asks for her code first, Bob signs first.  Carol's
    signature over revision 1 is stale (REVISION_CHANGED) and her code is bound to revision 1 (refused for
    revision 2); she fetches revision 2, gets a new code and signs: completed with three valid signatures."""
    w = world
    env = create_and_send(w, "Envelope Test Lease Three", [("alice", 1), ("bob", 2), ("carol", 2)])
    env = call(w, "alice", "SubmitSignature", take_turn(w, env, "alice").submit()).envelope
    assert [recipient(env, w, n).state for n in ("bob", "carol")] == [pb.RECIPIENT_STATE_NOTIFIED] * 2
    carol_early = take_turn(w, env, "carol")
    bob = take_turn(w, env, "bob")
    env = call(w, "bob", "SubmitSignature", bob.submit()).envelope
    assert env.state == pb.ENVELOPE_STATE_SENT
    fp, un = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED
    assert unchanged_refusal(w, "carol", carol_early.submit()) == (fp, "REVISION_CHANGED")
    carol_field = f"signet-{recipient(env, w, 'carol').id}"
    got = call(w, "carol", "GetDocument", pb.GetDocumentRequest(envelope_id=env.id, document_id=env.documents[0].id))
    on_current = sign_revision(w, got.content, "carol", carol_field)
    assert unchanged_refusal(w, "carol", carol_early.submit(on_current)) == (un, "OTP_NOT_FOUND")  # code for rev 1
    carol = take_turn(w, env, "carol")
    done = call(w, "carol", "SubmitSignature", carol.submit()).envelope
    assert done.state == pb.ENVELOPE_STATE_COMPLETED and done.documents[0].signatures == 3
    blocks = pdfsig_blocks(w, final_pdf(w, done, "three"))
    assert len(blocks) == 3 and all("Signature is Valid." in b and "Certificate is Trusted." in b for b in blocks)
    assert "Total document signed" in blocks[-1]
