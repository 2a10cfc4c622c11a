"""The fuzz targets: one function per input kind, each asserting the contract of what it feeds.

A target takes the fuzzer's bytes and returns normally when the code under test kept its contract; anything
else -- an exception of a type the contract does not allow, a :class:`~tests.fuzz.fakes.Finding` -- is a
finding (atheris saves the input).  ``prepare(name)`` builds what a target needs (SoftHSM tokens, an agent, a
server PKI) and imports the code it reaches, so that the runner can do it under atheris' instrumentation.

==================  ================================================================================
prescan             ``formats.prescan.check_bytes``: None or InvalidDocument, and the same verdict when
                    the file is read in small chunks (first byte: limits and chunk size)
pdf_verify          ``formats.verify_pdf_bytes`` (offline): a report (JSON-ready; reasons when invalid)
                    or InvalidDocument
revision            ``formats.check_pdf_revision`` of the unsigned or signed contract plus the fuzzer's bytes:
                    never raises, a refusal has a reason, nothing but our one real signature is accepted
csr                 ``server.ca.csr.check_csr``: a canonical SubjectPublicKeyInfo or InvalidRequest
ocsp_request        ``OcspResponder.respond``: never raises; a DER OCSPResponse that cryptography reads;
                    never internalError (marker bytes stand for our issuer's CertID hashes and the
                    fixture serials: ``ServerWorld.ocsp_placeholders``)
tsa_request         ``TimeStampAuthority.respond``: never raises; a DER TimeStampResp; never systemFailure;
                    a granted token carries the request's imprint and nonce
worker_frame        ``agent.jobs.decode`` + ``job_from_frame``: FrameError or a job whose frame round-trips
                    (first byte odd: the length prefix is computed, the header ends at the first newline)
agent_handler       every AgentService method: first byte picks the method (bit 7: present the last unlock
                    grant), the rest is its request (client streams: messages split at ``SEP``); never
                    INTERNAL, nothing but the status escapes, every response serialises
server_handler      every Identity/Certificate/Enrollment/EnvelopeService method, likewise (bit 7: an
                    EnvelopeService call comes from the operator, not from @p1's agent; ``@p1`` ...
                    ``@v1``, ``@d1`` ... in a string field stand for the fixture's ids, codes and
                    hashes: :mod:`tests.fuzz.worlds`); no envelope notice fails to reach the outbox
portal_request      a raw HTTP request to the portal's handler over memory (``@link``, ``@csrf``, ``@sess``
                    and the world's ids as placeholders: :mod:`tests.fuzz.portal_target`); never 500, always
                    an HTTP response, no link token echoed that the request did not name
kiosk_request       a raw HTTP request to the agent's kiosk pages over a fixture station state
                    (:mod:`tests.fuzz.kiosk_target`); never 500 or a dropped request, a status line always, no
                    injected header, never the PIN, signing only with the session's CSRF token
bridge_request      a raw HTTP request to the agent's local bridge over memory (``@origin``, ``@host``:
                    :mod:`tests.fuzz.bridge_target`); never 500, always an HTTP response, the signing step
                    reached only from an allowed origin and loopback Host, once per nonce
==================  ================================================================================
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bridge_target import bridge_request
from .evidence_targets import audit_proof, evidence_bundle
from .fakes import Aborted, FakeContext, Finding
from .kiosk_target import kiosk_request
from .portal_target import portal_request

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FIXTURES = HERE / "fixtures"
SEP = b"\xf0MSG\xf0"  # between the messages of a client stream
MAX_MESSAGES = 16
MAX_RESPONSES = 4096
TRACE = bool(os.environ.get("SIGNET_FUZZ_TRACE"))  # print each handler call's outcome (seed checks, replays)


def _trace(rpc: Rpc, outcome: str) -> None:
    if TRACE:
        print(f"  {rpc.service}.{rpc.name}: {outcome}")


# -- formats ---------------------------------------------------------------------------------------------------------
def _scan(doc: bytes, limits: Any) -> str | None:
    from formats.errors import InvalidDocument
    from formats.prescan import check_bytes

    try:
        check_bytes(doc, "the document", limits)
    except InvalidDocument as e:
        return str(e)
    return None


def prescan(data: bytes) -> None:
    from formats import prescan as ps

    if not data:
        return
    mode, doc = data[0], data[1:]
    limits = ps.DEFAULT_LIMITS if mode & 1 == 0 else ps.Limits(max_contents_hex=96, max_string=48, max_token=16,
                                                                  max_depth=6)
    whole = _scan(doc, limits)
    chunk = 128 + (mode >> 1) * 29  # 128 .. 3,811 bytes: what a document > 1 MiB meets at the real chunk size
    saved = ps._CHUNK
    ps._CHUNK = chunk
    try:
        pieces = _scan(doc, limits)
    finally:
        ps._CHUNK = saved
    if (whole is None) != (pieces is None):
        refusal = (whole or pieces or "").split(": it has ", 1)[-1].split(" (at byte", 1)[0]
        kind = re.sub(r"\d+", "the limit", refusal).replace("the limit bytes", "the limit")
        raise Finding(f"the pre-scan's verdict depends on how the file is read: in one piece {whole or 'accepted'}; "
                      f"in {chunk}-byte chunks {pieces or 'accepted'}",
                      key=f"prescan verdict depends on the read size: {kind}")


@functools.cache
def _pdf_roots() -> list[bytes]:
    return [(FIXTURES / "root.der").read_bytes()]


def pdf_verify(data: bytes) -> None:
    from formats.errors import InvalidDocument
    from formats.verify import verify_pdf_bytes

    try:
        report = verify_pdf_bytes(data, _pdf_roots(), revocation="offline", fetch_timeout=0.5)
    except InvalidDocument as e:
        if not str(e):
            raise Finding("InvalidDocument without a message") from e
        return
    json.dumps(report.to_dict())
    if not report.valid and not report.reasons():
        raise Finding("an invalid report gives no reason")


@functools.cache
def _revision_bases() -> tuple[bytes, bytes]:
    """(the unsigned contract, the same contract with one signature of ours): pdf_verify's seeds."""
    return ((CORPUS / "pdf_verify" / "contract.pdf").read_bytes(), (CORPUS / "pdf_verify" / "signed.pdf").read_bytes())


def _our_signature(new: bytes, signed: bytes) -> bool:
    """``new`` is our signed contract, or differs from it only inside the signature's ``/Contents`` value: the
    one part of a signed PDF no signature covers (hex digits' case, the certificates a CMS carries unsigned; the
    verifier ignores an embedded certificate that no longer chains: fuzz run of 2026-11-30, F17)."""
    if new == signed:
        return True
    start = signed.rindex(b"/Contents <") + len(b"/Contents ")
    end = signed.index(b">", start) + 1
    return len(new) == len(signed) and new[:start] == signed[:start] and new[end:] == signed[end:]


def revision(data: bytes) -> None:
    """A signer's returned revision: the accepted PDF (first byte even: the unsigned contract; odd: the contract
    with one signature of ours, judged as the envelope server does from the second signature on -- the earlier
    signature not validated again, ``earlier_accepted`` -- when bit 1 is set too) plus the fuzzer's bytes.
    Never raises; a refusal has a reason and a message;
    the only revision that may be accepted is the one real signature of ours over the unsigned contract, up to
    the bytes of its ``/Contents`` value that no signature covers (a fuzzer cannot sign with our key: any other
    acceptance is a hole in the validation)."""
    from formats.revision import check_pdf_revision

    if not data:
        return
    contract, signed = _revision_bases()
    previous = signed if data[0] & 1 else contract
    new = previous + data[1:]
    verdict = check_pdf_revision(previous, new, trust_roots=_pdf_roots(), revocation="offline",
                                 earlier_accepted=data[0] & 3 == 3)
    if verdict.accepted:
        if not _our_signature(new, signed):
            raise Finding(f"a revision was accepted that no key of ours signed ({len(data) - 1} bytes appended to "
                          f"the {'signed' if data[0] & 1 else 'unsigned'} contract)",
                          key="revision accepted without our signature over it")
    elif not verdict.reason or not verdict.message:
        raise Finding("a refused revision without a reason or a message")


# -- server parsers -------------------------------------------------------------------------------------------------
class _Swallowed(logging.Handler):
    """The last exception a component logged and answered with an error status (OCSP internalError, TSA
    systemFailure): the cause of such a finding, which respond() itself never shows."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.last = record.exc_info[1]


@functools.cache
def _swallowed(logger: str) -> _Swallowed:
    handler = _Swallowed()
    log = logging.getLogger(logger)
    log.addHandler(handler)
    log.setLevel(logging.ERROR)
    return handler


def _answered_failure(logger: str, what: str) -> Finding:
    handler = _swallowed(logger)
    cause, handler.last = handler.last, None
    finding = Finding(what + (f" after {type(cause).__name__}: {cause}" if cause else ""), key=what)
    finding.__cause__ = cause
    return finding

def csr(data: bytes) -> None:
    from cryptography.hazmat.primitives import serialization

    from server.ca.csr import check_csr
    from server.ca.errors import InvalidRequest

    try:
        checked = check_csr(data)
    except InvalidRequest as e:
        if not e.message:
            raise Finding("InvalidRequest without a message") from e
        return
    key = serialization.load_der_public_key(checked.spki_der)
    again = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if again != checked.spki_der:
        raise Finding("the accepted key's SubjectPublicKeyInfo is not canonical")


def ocsp_request(data: bytes) -> None:
    from asn1crypto import ocsp
    from cryptography.x509 import ocsp as cocsp

    from .worlds import server_world

    world = server_world()
    for marker, value in world.ocsp_placeholders():
        data = data.replace(marker, value)
    _swallowed("server.ca.ocsp").last = None
    der = world.ocsp.respond(data)
    if not isinstance(der, bytes):
        raise Finding(f"respond() returned {type(der).__name__}")
    resp = ocsp.OCSPResponse.load(der, strict=True)
    status = resp["response_status"].native
    if status == "internal_error":
        raise _answered_failure("server.ca.ocsp", "the OCSP responder answered internalError")
    try:
        parsed = cocsp.load_der_ocsp_response(der)
    except ValueError as e:
        raise Finding(f"cryptography cannot read the {status} OCSP response: {e}",
                      key="OCSP response unreadable by cryptography") from None
    if status == "successful":  # cryptography reads all of it (asn1crypto's .native trips over valid ANY values)
        for single in parsed.responses:
            _ = single.certificate_status, single.this_update_utc, single.serial_number


def tsa_request(data: bytes) -> None:
    from asn1crypto import cms, core, tsp

    from .worlds import server_world

    _swallowed("server.tsa").last = None
    der = server_world().tsa.respond(data)
    if not isinstance(der, bytes):
        raise Finding(f"respond() returned {type(der).__name__}")
    outer = core.Sequence.load(der, strict=True)
    status = tsp.PKIStatusInfo.load(outer[0].dump(), strict=True).native
    if status["status"] == "granted":
        token = cms.ContentInfo.load(outer[1].dump(), strict=True)
        tst = token["content"]["encap_content_info"]["content"].parsed
        req = tsp.TimeStampReq.load(data)
        asked, got = req["message_imprint"], tst["message_imprint"]
        if (got["hash_algorithm"]["algorithm"].native, got["hashed_message"].native) != (
                asked["hash_algorithm"]["algorithm"].native, asked["hashed_message"].native):
            raise Finding("the token's message imprint is not the request's")
        if tst["nonce"].native != req["nonce"].native:
            raise Finding("the token's nonce is not the request's")
        return
    if status["status"] != "rejection" or len(outer) != 1:
        raise Finding(f"status {status['status']!r} with {len(outer) - 1} token(s)")
    if "system_failure" in (status["fail_info"] or ()):
        raise _answered_failure("server.tsa", "the TSA answered systemFailure")


# -- agent worker pipe ----------------------------------------------------------------------------------------------
def worker_frame(data: bytes) -> None:
    from agent.jobs import FrameError, decode, job_from_frame

    if not data:
        return
    if data[0] & 1:  # the header's JSON up to the first newline, its length prefix computed: JSON-level mutations
        header, _, tail = data[1:].partition(b"\n")
        data = len(header).to_bytes(4, "big") + header + tail
    else:
        data = data[1:]
    try:
        kind, fields, blobs = decode(data)
        job = job_from_frame(fields, blobs)
    except FrameError:
        return
    frame = job.frame()
    kind, fields, blobs = decode(frame)
    if kind != "job" or job_from_frame(fields, blobs).frame() != frame:
        raise Finding("a job does not survive its own frame")


# -- gRPC handlers --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rpc:
    service: str
    name: str
    request: Any  # the request message class
    client_streaming: bool
    server_streaming: bool
    response: Any  # the response message class


def rpcs(module: Any) -> tuple[Rpc, ...]:
    """Every method of every service of a generated ``*_pb2`` module, in declaration order."""
    out = []
    for svc in module.DESCRIPTOR.services_by_name.values():
        for m in svc.methods:
            out.append(Rpc(svc.name, m.name, getattr(module, m.input_type.name), m.client_streaming,
                           m.server_streaming, getattr(module, m.output_type.name)))
    return tuple(out)


def split_messages(payload: bytes, rpc: Rpc) -> list[Any]:
    """The request(s) encoded in ``payload``; DecodeError when one does not parse."""
    parts = payload.split(SEP, MAX_MESSAGES - 1) if rpc.client_streaming else [payload]
    return [rpc.request.FromString(p) for p in parts]


def _serve(fn: Callable[[Any, Any], Any], rpc: Rpc, requests: list[Any], ctx: FakeContext,
           leave_after: Callable[[Any], bool] | None = None) -> list[Any]:
    """Call a servicer method as grpc would; the responses, or Aborted with the status it ended with.
    ``leave_after``: the client of a response stream goes away (:meth:`FakeContext.leave`) after the first
    response it holds for; after ``MAX_RESPONSES`` it stops reading (the stream is closed)."""
    arg = iter(requests) if rpc.client_streaming else requests[0]
    result = fn(arg, ctx)
    if rpc.server_streaming:
        responses = []
        try:
            for r in itertools.islice(result, MAX_RESPONSES):
                responses.append(r)
                if leave_after is not None and ctx.active and leave_after(r):
                    ctx.leave()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    else:
        responses = [result]
    for r in responses:
        if not isinstance(r, rpc.response):
            raise Finding(f"{rpc.name} answered {type(r).__name__}, not {rpc.response.__name__}")
        r.SerializeToString()  # what grpc does next: a response that cannot be encoded fails the call
    return responses


def _check_status(rpc: Rpc, e: Aborted) -> None:
    import grpc

    _trace(rpc, f"{e.code.name} {e.details}")
    if e.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        raise Finding(f"{rpc.service}.{rpc.name} ended with {e.code.name}: {e.details}",
                      key=f"{rpc.service}.{rpc.name} ended with {e.code.name}") from e


@functools.cache
def agent_rpcs() -> tuple[Rpc, ...]:
    from signet.v1 import agent_pb2

    return rpcs(agent_pb2)


_MUTATES_TOKEN = {"GenerateKey", "DeleteKey", "ImportCertificate"}


def agent_handler(data: bytes) -> None:
    from google.protobuf.message import DecodeError

    from signet.wire import GRANT_METADATA

    from .worlds import agent_world

    if not data:
        return
    table = agent_rpcs()
    rpc = table[(data[0] & 0x7F) % len(table)]
    try:
        requests = split_messages(data[1:], rpc)
    except DecodeError:
        return  # grpc refuses what does not parse before any handler sees it
    world = agent_world()
    metadata = ((GRANT_METADATA, world.last_grant),) if data[0] & 0x80 and world.last_grant else ()
    # WatchTokens streams for as long as the client stays: this client leaves after the initial list
    ctx = FakeContext(metadata=metadata, active=rpc.name != "WatchTokens")
    try:
        responses = _serve(getattr(world.servicer, rpc.name), rpc, requests, ctx)
    except Aborted as e:
        _check_status(rpc, e)
        return
    finally:
        for cb in ctx.callbacks:
            cb()
    _trace(rpc, f"OK, {len(responses)} response(s)")
    if rpc.name == "Unlock":
        world.last_grant = responses[0].grant
    if rpc.name in _MUTATES_TOKEN:
        world.restore()


@functools.cache
def server_rpcs() -> tuple[Rpc, ...]:
    from signet.v1 import server_pb2

    return rpcs(server_pb2)


def _servicer(world: Any, rpc: Rpc) -> Any:
    return {"IdentityService": world.identity_servicer, "CertificateService": world.certificate_servicer,
            "EnrollmentService": world.enrollment_servicer, "EnvelopeService": world.envelope_servicer,
            "ContractService": world.contract_servicer, "AuditService": world.audit_servicer,
            "KioskService": world.kiosk_servicer}[rpc.service]


def _resolve(world: Any, msg: Any) -> None:
    """Replace placeholders in every string field of ``msg`` and of the messages it holds."""
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_STRING:
            if fd.is_repeated:
                for i, v in enumerate(value):
                    if v.startswith("@"):
                        value[i] = world.resolve(v)
            elif value.startswith("@"):
                setattr(msg, fd.name, world.resolve(value))
        elif fd.type == fd.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            entry = fd.message_type.fields_by_name["value"]
            for k in list(value):
                if entry.type == entry.TYPE_STRING and value[k].startswith("@"):
                    value[k] = world.resolve(value[k])
                elif entry.type == entry.TYPE_MESSAGE:
                    _resolve(world, value[k])
        elif fd.type == fd.TYPE_MESSAGE:
            for m in value if fd.is_repeated else (value,):
                _resolve(world, m)


def _resolve_bytes(world: Any, msg: Any) -> None:
    """Replace a certificate placeholder in the top-level bytes fields of ``msg`` (ServerWorld.resolve_bytes), then
    a card proof placeholder of an OpenCardSessionRequest (ServerWorld.card_proof, over the certificate sent)."""
    from .worlds import CARD_PROOF

    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_BYTES and not fd.is_repeated and value.startswith(b"@"):
            setattr(msg, fd.name, world.resolve_bytes(value))
    if msg.DESCRIPTOR.name == "OpenCardSessionRequest" and msg.proof_statement == CARD_PROOF:
        msg.proof_statement, msg.proof_signature = world.card_proof(msg.certificate_der, msg.proof_signature)


_USES_SIGNING_CODES = {"StartSigning", "SubmitSignature"}


def server_handler(data: bytes) -> None:
    from google.protobuf.message import DecodeError

    from .worlds import server_world

    if not data:
        return
    table = server_rpcs()
    rpc = table[(data[0] & 0x7F) % len(table)]
    try:
        requests = split_messages(data[1:], rpc)
    except DecodeError:
        return
    world = server_world()
    for req in requests:
        _resolve(world, req)
        _resolve_bytes(world, req)
    # these authenticate the TLS client
    envelopes = rpc.service in ("EnvelopeService", "ContractService", "AuditService")
    auth = {"transport_security_type": [b"ssl"]}
    if envelopes:  # the caller's TLS client certificate: @p1's agent, or (bit 7) the operator
        auth["x509_pem_cert"] = [world.operator_tls_pem if data[0] & 0x80 else world.person_tls_pem]
    elif rpc.service == "KioskService":  # a signing station, or (bit 7) the operator (refused: stations only)
        auth["x509_pem_cert"] = [world.operator_tls_pem if data[0] & 0x80 else world.station_tls_pem]
    ctx = FakeContext(peer="ipv4:127.0.0.1:50000", auth=auth)
    try:
        try:
            # WatchEnvelopeEvents follows new events for as long as the client stays: this one leaves once caught up
            _serve(getattr(_servicer(world, rpc), rpc.name), rpc, requests, ctx,
                   leave_after=lambda r: bool(getattr(r, "caught_up", False)))
            _trace(rpc, "OK")
        except Aborted as e:
            _check_status(rpc, e)
        if envelopes:
            world.deliver_notices()
    finally:
        for cb in ctx.callbacks:
            cb()
        if rpc.service == "EnrollmentService":
            world.used(requests[0].person_id)
        if rpc.name in _USES_SIGNING_CODES:
            world.used_signing_codes()
        world.refresh()


# -- registry ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    name: str
    fn: Callable[[bytes], None]
    seeds: tuple[Path, ...]  # corpus directories (the first is this target's own)
    max_len: int  # libFuzzer -max_len: room to grow past the seeds
    instrument: tuple[str, ...]  # packages instrumented for coverage: what this target's input reaches


def prepare(name: str) -> None:
    """Import what ``name`` reaches and build its fixtures (call this under atheris' instrumentation)."""
    from . import worlds

    if name == "prescan":
        import formats.prescan
    if name in ("pdf_verify", "agent_handler", "revision"):
        import formats.cades
        import formats.pades
        import formats.verify  # noqa: F401
    if name == "csr":
        import server.ca.csr  # noqa: F401
    if name == "worker_frame":
        import agent.jobs
    if name == "bridge_request":
        import agent.bridge
    if name == "kiosk_request":
        import agent.kiosk.web  # noqa: F401
    if name in ("evidence_bundle", "audit_proof"):
        importlib.import_module("agent.evidence")
    if name == "agent_handler":
        worlds.agent_world()
    if name in ("ocsp_request", "tsa_request", "server_handler", "portal_request"):
        worlds.server_world()


def _guarded(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``fn`` with findings already known or already seen in this run tolerated (:mod:`tests.fuzz.known`);
    any other finding prints its signature (the driver reads it) and propagates to atheris."""
    from .known import signature, tolerated

    @functools.wraps(fn)
    def run(data: bytes) -> None:
        try:
            fn(data)
        except Exception as e:
            sig = signature(e)
            if tolerated(sig):
                return
            print(f"\nsignature: {sig}", file=sys.stderr, flush=True)
            raise

    return run


_FORMATS_CORPUS = HERE.parent / "formats" / "corpus"
_PDF_STACK = ("formats", "pyhanko", "pyhanko_certvalidator", "asn1crypto")
_SERVER = ("server", "signet", "hsm")
TARGETS: dict[str, Target] = {t.name: dataclasses.replace(t, fn=_guarded(t.fn)) for t in (
    Target("prescan", prescan, (CORPUS / "prescan", _FORMATS_CORPUS), 64 * 1024, ("formats.prescan",)),
    Target("pdf_verify", pdf_verify, (CORPUS / "pdf_verify", _FORMATS_CORPUS), 64 * 1024, _PDF_STACK),
    Target("revision", revision, (CORPUS / "revision",), 32 * 1024, _PDF_STACK),
    Target("csr", csr, (CORPUS / "csr",), 8 * 1024, ("server.ca.csr",)),
    Target("ocsp_request", ocsp_request, (CORPUS / "ocsp_request",), 4 * 1024, ("server.ca", "asn1crypto")),
    Target("tsa_request", tsa_request, (CORPUS / "tsa_request",), 4 * 1024, ("server.tsa", "server.tsa_log",
                                                                             "asn1crypto")),
    Target("worker_frame", worker_frame, (CORPUS / "worker_frame",), 8 * 1024, ("agent.jobs",)),
    Target("agent_handler", agent_handler, (CORPUS / "agent_handler",), 64 * 1024, ("agent", "hsm", "signet",
                                                                                    "formats")),
    Target("server_handler", server_handler, (CORPUS / "server_handler",), 16 * 1024, (*_SERVER, "asn1crypto")),
    Target("evidence_bundle", evidence_bundle, (CORPUS / "evidence_bundle",), 64 * 1024, ("agent.evidence",)),
    Target("audit_proof", audit_proof, (CORPUS / "audit_proof",), 8 * 1024, ("agent.evidence", "signet.merkle",
                                                                             "signet.auditformat")),
    Target("portal_request", portal_request, (CORPUS / "portal_request",), 16 * 1024, ("server.portal",
                                                                                        "server.envelopes")),
    Target("bridge_request", bridge_request, (CORPUS / "bridge_request",), 16 * 1024, ("agent.bridge",)),
    Target("kiosk_request", kiosk_request, (CORPUS / "kiosk_request",), 16 * 1024, ("agent.kiosk",)),
)}
