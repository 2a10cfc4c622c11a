"""Completed two-party envelopes per second, end to end, next to two bare PAdES signatures on the same tokens.

Set-up (not measured): a real ``signet-server`` (:class:`scripts.processes.ServerProcess`, SQLite store) on its
own SoftHSM token, Alice and Bob registered, phone-verified and approved through the operator API, and two real
``signet-agent`` processes, one per person, each with the person's own token, enrolled with ``signet enroll``.

A *journey*, driven from this process the way `signet envelope` drives it (the server's mutual-TLS API with the
TLS files each agent got at enrollment, the agent for signing): Alice creates the envelope (a 2-page contract,
Alice order 1, Bob order 2), sends it; then each of them fetches the current revision, asks for a code bound to
it (StartSigning), reads the code (from the outbox, unsealed here with the server's data key: the phone), has
their agent sign the revision on their token (SignPdf, per-call PIN, the field ``signet-<recipient id>``) and
submits it (the server validates it); the second submission completes the envelope.  Each step is timed.

Baseline in the same run: two bare PAdES signatures in this process (``formats.sign_pdf`` with
``formats.TokenSigner`` on the same tokens and keys: Alice's on the contract, Bob's on the result), pairs/s.
Target (issue 10): journeys/s >= 0.5 x the bare two-signature rate, i.e. the server's validation and
bookkeeping (and everything around the two signatures) cost no more than the signing itself.

Variants alternate per round (``BENCH_ROUNDS``, default 3), each running ``BENCH_ENVELOPE_SECONDS`` (default 6):
the bare pair, journeys with 1 client, journeys with ``BENCH_ENVELOPE_CLIENTS`` (default 4) clients at once.
Then a profiling phase: the server runs under :func:`serve_profiled` (a sampler of every thread's Python stack,
switched on by SIGUSR1 only for this phase), journeys with 1 client, and the samples taken inside envelope RPCs
are attributed to what they were doing (revision validation, blob writes, store, notices, codes ...), as ms of
server time per journey.

    python -m bench.envelope_journeys
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import Report, alternate, percentiles

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_ENVELOPE_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CLIENTS = int(os.environ.get("BENCH_ENVELOPE_CLIENTS", "4"))
PIN, SO_PIN = "1234", "12345678"
SERVER_TOKEN = "bench-envelope-server"  # noqa: S105 - a token label
KEY_LABEL = "bench-signing"
SAMPLE_SECONDS = 0.005
POLICY = f"""[policy]
default_callers = []
admin_callers = ["local"]

[[policy.key]]
label = "{KEY_LABEL}"
callers = ["local"]
"""
STEPS = ("create", "send", "fetch", "start_signing", "code (outbox)", "sign on token (agent)", "submit")


# -- the server under a stack sampler ---------------------------------------------------------------------------------
def _frame_name(filename: str, function: str) -> str:
    """``server/blobs.py:put`` for the project's code, ``pyhanko/...:f`` for a library, ``threading.py:wait``."""
    path = Path(filename)
    if path.is_relative_to(ROOT) and ".venv" not in path.parts:
        return f"{path.relative_to(ROOT)}:{function}"
    if "site-packages" in path.parts:
        return f"{'/'.join(path.parts[path.parts.index('site-packages') + 1:])}:{function}"
    return f"{path.name}:{function}"


class StackSampler:
    """Every ``interval`` seconds while switched on, the Python stack of every other thread of this process,
    counted per distinct stack (innermost frame first).  Off until SIGUSR1, off again at SIGUSR2."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.on = threading.Event()
        self.stacks: Counter[tuple[str, ...]] = Counter()
        self.ticks = 0
        self.seconds_on = 0.0

    def run(self) -> None:
        me = threading.get_ident()
        while True:
            self.on.wait()
            t0 = time.perf_counter()
            while self.on.is_set():
                time.sleep(self.interval)
                self.ticks += 1
                for tid, frame in sys._current_frames().items():
                    if tid == me:
                        continue
                    stack = []
                    f: Any = frame
                    while f is not None:
                        stack.append(_frame_name(f.f_code.co_filename, f.f_code.co_name))
                        f = f.f_back
                    self.stacks[tuple(stack)] += 1
            self.seconds_on += time.perf_counter() - t0

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"interval": self.interval, "ticks": self.ticks, "seconds_on": self.seconds_on,
                                    "stacks": [[list(s), n] for s, n in self.stacks.items()]}))


def serve_profiled(out: Path, server_args: Sequence[str]) -> int:
    """``signet-server`` (``server.main.main(server_args)``) with a :class:`StackSampler`; the samples go to
    ``out`` (JSON) when the server has stopped."""
    from server.main import main as server_main

    sampler = StackSampler()
    signal.signal(signal.SIGUSR1, lambda *_: sampler.on.set())
    signal.signal(signal.SIGUSR2, lambda *_: sampler.on.clear())
    threading.Thread(target=sampler.run, name="stack-sampler", daemon=True).start()
    rc = server_main(list(server_args))
    sampler.on.clear()
    sampler.dump(out)
    return rc


# -- where the server's time went -------------------------------------------------------------------------------------
RPCS = ("CreateEnvelope", "SendEnvelope", "GetEnvelope", "ListEnvelopes", "GetDocument", "StartSigning",
        "SubmitSignature", "DeclineEnvelope", "VoidEnvelope", "ListEnvelopeEvents")
# first match wins; a rule matches when any frame of the stack starts with one of its prefixes
PURPOSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("revision validation (formats.revision, pyHanko)", ("formats/revision.py", "formats/strict.py")),
    ("PDF read at create (page count)", ("server/envelopes/drafting.py",)),
    ("signer certificate check (CA records)", ("server/envelopes/acceptance.py:check_signer",)),
    ("revision prefix check", ("server/envelopes/acceptance.py",)),
    ("blob writes (temp file, fsync, rename)", ("server/blobs.py:put",)),
    ("blob reads (SHA-256 checked)", ("server/blobs.py:get",)),
    ("notices (outbox)", ("server/envelopes/notices.py", "server/envelopes/dispatch.py", "server/envelopes/bell.py",
                          "server/notify/")),
    ("one-time codes", ("server/otp.py", "server/envelopes/signing.py")),
    ("idempotency keys", ("server/envelopes/idempotency.py",)),
    ("event log", ("server/envelopes/events.py",)),
    ("routing", ("server/envelopes/routing.py",)),
    ("envelope rows (load, update)", ("server/envelopes/records.py", "server/envelopes/listing.py")),
    ("store: transactions, commits, lock", ("server/store/",)),
    ("caller authentication", ("server/api/auth.py",)),
    ("servicer, protobuf conversion", ("server/",)),
)
BACKGROUND = ("server/envelopes/dispatch.py", "server/envelopes/scheduler.py", "server/envelopes/background.py",
              "server/envelopes/bell.py", "server/envelopes/watch.py")
IDLE = ("threading.py:wait", "queue.py:get", "selectors.py:select", "threading.py:_wait_for_tstate_lock")


def _rpc(stack: Sequence[str]) -> str | None:
    for frame in stack:
        path, _, function = frame.partition(":")
        if path == "server/api/envelopes.py" and function in RPCS:
            return function
    return None


def _validation_step(stack: Sequence[str]) -> str | None:
    """Within a revision check: the step of formats/revision.py running, and what it was calling."""
    for i, frame in enumerate(stack):
        if frame.startswith("formats/revision.py:"):
            step = frame.split(":", 1)[1]
            callee = stack[i - 1].split(":", 1)[0] if i else ""
            where = "/".join(callee.split("/")[:2]) if callee and not callee.startswith("formats/revision.py") \
                else ""
            return f"{step} -> {where}" if where else step
    return None


def _purpose(stack: Sequence[str]) -> str:
    for name, prefixes in PURPOSES:
        if any(frame.startswith(prefixes) for frame in stack):
            return name
    return "other (gRPC, interpreter)"


@dataclass
class Profile:
    seconds: float  # sampled wall time
    journeys: int
    by_purpose: dict[str, float] = field(default_factory=dict)  # ms of server time per journey
    by_rpc: dict[str, float] = field(default_factory=dict)
    by_validation_step: dict[str, float] = field(default_factory=dict)  # inside formats.revision
    background: float = 0.0  # ms per journey in the envelope background threads (notice dispatch ...), busy only


def analyse(path: Path, journeys: int) -> Profile:
    data = json.loads(path.read_text())
    ticks = max(1, int(data["ticks"]))
    scale = data["seconds_on"] / ticks * 1000 / max(1, journeys)  # one sample of one thread -> ms per journey
    prof = Profile(data["seconds_on"], journeys)
    purpose: Counter[str] = Counter()
    rpc: Counter[str] = Counter()
    validation: Counter[str] = Counter()
    background = 0
    for stack, n in data["stacks"]:
        name = _rpc(stack)
        if name is not None:
            rpc[name] += n
            purpose[_purpose(stack)] += n
            step = _validation_step(stack)
            if step is not None:
                validation[step] += n
        elif any(f.startswith(BACKGROUND) for f in stack) and not stack[0].startswith(IDLE):
            background += n
    prof.by_purpose = {k: v * scale for k, v in purpose.most_common()}
    prof.by_rpc = {k: v * scale for k, v in rpc.most_common()}
    prof.by_validation_step = {k: v * scale for k, v in validation.most_common(8)}
    prof.background = background * scale
    return prof


# -- the world --------------------------------------------------------------------------------------------------------
@dataclass
class Person:
    name: str
    first: str
    phone: str
    email: str
    token: str
    person_id: str = ""
    key_id: str = ""
    agent: Any = None  # scripts.processes.AgentProcess
    link: Any = None  # agent.serverlink.ServerLink: the API with the agent's TLS files
    client: Any = None  # agent.client.AgentClient


class Outbox:
    """One-time codes as the phone gets them: the newest outbox messages to a number, unsealed with the server's
    data key (the soak reads codes the same way)."""

    def __init__(self, env: Any) -> None:
        from hsm import Hsm
        from server.config import load_config
        from server.datakeys import load_data_keys
        from server.store import open_store

        os.environ[env.pin_env] = env.pin  # the configuration names the PIN's variable
        cfg = load_config(env.config)
        token = Hsm(pin_state=env.dir / "bench-pins.json").token(label=env.token_label)
        token.login(env.pin)
        try:
            self._box = load_data_keys(cfg, token).box
        finally:
            token.logout()
        self._store = open_store(cfg.server.store_url, password=cfg.server.store_password)  # SQLite or PostgreSQL

    def code(self, phone: str, digits: int, must_contain: str = "", timeout: float = 10.0) -> str:
        """The code of the newest message to ``phone`` whose text holds ``must_contain`` (e.g. the revision's
        SHA-256 prefix a signing code names), waiting for it to arrive."""
        import re

        from server.notify.outbox import OutboxChannel

        deadline = time.monotonic() + timeout
        while True:
            rows = self._store.query("SELECT id, body_sealed FROM notify_outbox WHERE to_value = ? "
                                     "ORDER BY created_at DESC, id DESC LIMIT 20", (phone,))
            for row in rows:
                body = self._box.decrypt(bytes(row["body_sealed"]), OutboxChannel._aad(row["id"])).decode()
                m = re.search(rf"\b(\d{{{digits}}})\b", body)
                if m and must_contain in body:
                    return m.group(1)
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {digits}-digit code to {phone} naming {must_contain!r}")
            time.sleep(0.002)

    def close(self) -> None:
        self._store.close()


def _tokens(state: Path, labels: Sequence[str]) -> None:
    for label in labels:
        subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state / "softhsm"), label, SO_PIN, PIN],
                       check=True, capture_output=True)
    os.environ["SOFTHSM2_CONF"] = str(state / "softhsm" / "softhsm2.conf")  # before anything loads PKCS#11


def _admin(env: Any, *args: str) -> Any:
    from scripts.processes import server_cli

    p = server_cli(env, "server.admin", "--config", str(env.config), "--json", "--as", "bench-operator", *args)
    if p.returncode != 0:
        raise RuntimeError(f"signet-admin {' '.join(args[:2])}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def _register(env: Any, operator: Path, outbox: Outbox, people: Sequence[Person]) -> None:
    import grpc

    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    creds = grpc.ssl_channel_credentials((operator / "ca.pem").read_bytes(), (operator / "operator.key").read_bytes(),
                                         (operator / "operator.crt").read_bytes())
    with grpc.secure_channel(env.api, creds) as ch:
        ids = pbg.IdentityServiceStub(ch)
        for p in people:
            person = ids.RegisterPerson(pb.RegisterPersonRequest(
                legal_name=p.name, document_type="prc_resident_id", document_number=_prc_id(p.phone[-3:]),
                phone=p.phone, email=p.email), timeout=30).person
            c = ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=person.id), timeout=30)
            ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=person.id, code=outbox.code(p.phone, 6),
                                                    code_id=c.challenge.code_id), timeout=30)
            ids.ApprovePerson(pb.ApprovePersonRequest(person_id=person.id, evidence="benchmark", reference="bench"),
                              timeout=30)
            p.person_id = person.id


def _prc_id(sequence: str) -> str:
    """A PRC resident ID number (Beijing, born 1990-03-07) with its ISO 7064 MOD 11-2 check digit."""
    from server.identity.documents import mod11_2_check

    body = "110105" + "19900307" + sequence
    return body + mod11_2_check(body)


def _enroll(env: Any, outbox: Outbox, p: Person, state: Path) -> None:
    from agent.client import AgentClient, Target
    from agent.serverlink import ServerLink, ServerTarget
    from scripts.processes import AgentProcess, signet

    p.agent = AgentProcess(state / f"agent-{p.first}", POLICY, agent_settings='log_level = "WARNING"').start()
    common = ["enroll", "--token", p.token, "--server", env.enroll, "--server-ca", str(env.ca_pem), "--person",
              p.person_id]
    r = signet(p.agent, *common, "--send-code")
    if r.returncode == 0:
        r = signet(p.agent, *common, "--pin-env", "PIN", "--code-env", "CODE", "--api", env.api, "--key-label",
                   KEY_LABEL, env={"PIN": PIN, "CODE": outbox.code(p.phone, 8)})
    if r.returncode != 0:
        raise RuntimeError(f"signet enroll for {p.first}: {r.stderr.strip()}")
    tls = p.agent.state / "server"
    record = json.loads((tls / "enrollment.json").read_text())
    p.key_id = record["key_id"]
    p.link = ServerLink(ServerTarget(enroll=env.enroll, ca_pem=(tls / "ca.pem").read_bytes(), api=env.api,
                                     client_cert_pem=(tls / "agent.crt").read_bytes(),
                                     client_key_pem=(tls / "agent.key").read_bytes()))
    p.client = AgentClient(Target(socket=p.agent.socket))


# -- one journey ------------------------------------------------------------------------------------------------------
class Timings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.steps: dict[str, list[float]] = defaultdict(list)  # ms

    def add(self, step: str, ms: float) -> None:
        with self._lock:
            self.steps[step].append(ms)


_n = iter(range(1, 1 << 30))
_n_lock = threading.Lock()


def journey(alice: Person, bob: Person, outbox: Outbox, work: Path, timings: Timings | None = None) -> None:
    """Create, send, Alice signs, Bob signs; raises unless the envelope ends completed."""
    from agent.client import PdfOptions, TokenRef
    from formats.samplepdf import contract_pdf_bytes
    from signet.v1 import server_pb2 as pb

    with _n_lock:
        n = next(_n)
    t = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t
        now = time.perf_counter()
        if timings is not None:
            timings.add(step, (now - t) * 1000)
        t = now

    title = f"Bench lease {n}"
    content = contract_pdf_bytes(title, ["Alice Bench", "Bob Bench"], pages=2)
    start = t
    link = alice.link
    env = link.call(link.envelopes.CreateEnvelope, pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title,
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=content)],
        recipients=[pb.RecipientSpec(person_id=p.person_id, role=pb.RECIPIENT_ROLE_SIGNER, routing_order=o,
                                     signing_method=pb.SIGNING_METHOD_TOKEN)
                    for o, p in ((1, alice), (2, bob))])).envelope
    lap("create")
    env = link.call(link.envelopes.SendEnvelope, pb.SendEnvelopeRequest(idempotency_key=f"send {env.id}",
                                                                        envelope_id=env.id)).envelope
    lap("send")
    doc_id = env.documents[0].id
    rids = {r.person_id: r.id for r in env.recipients}
    for who, p in (("1st", alice), ("2nd", bob)):
        svc = p.link.envelopes
        got = p.link.call(svc.GetDocument, pb.GetDocumentRequest(envelope_id=env.id, document_id=doc_id))
        sha = hashlib.sha256(got.content).hexdigest()
        lap(f"{who} fetch")
        c = p.link.call(svc.StartSigning, pb.StartSigningRequest(envelope_id=env.id, document_id=doc_id,
                                                                 revision_sha256=sha)).challenge
        lap(f"{who} start_signing")
        code = outbox.code(p.phone, 6, must_contain=sha[:16])
        lap(f"{who} code (outbox)")
        src = work / f"{env.id}-{who}.pdf"
        src.write_bytes(got.content)
        _, signed = p.client.sign_to_bytes(src, pdf=True, token=TokenRef(label=p.token), key_id=p.key_id, pin=PIN,
                                           options=PdfOptions(field_name=f"signet-{rids[p.person_id]}",
                                                              reason=f"Signet envelope {title}"))
        src.unlink()
        lap(f"{who} sign on token (agent)")
        env = p.link.call(svc.SubmitSignature, pb.SubmitSignatureRequest(
            idempotency_key=f"{env.id}-{doc_id}-{sha}", envelope_id=env.id, document_id=doc_id, one_time_code=code,
            code_id=c.code_id, content=signed), timeout=60).envelope
        lap(f"{who} submit")
    if env.state != pb.ENVELOPE_STATE_COMPLETED:
        raise RuntimeError(f"envelope {env.id} ended {env.state}, not completed")
    if timings is not None:
        timings.add("journey", (time.perf_counter() - start) * 1000)


def journeys_per_second(clients: int, run: Callable[[Timings | None], None], timings: Timings | None,
                        seconds: float = SECONDS) -> tuple[float, int]:
    """(completed journeys per second, how many) of ``clients`` threads each running journeys for ``seconds``
    (a journey under way at the end is finished and counted; the rate divides by the whole time taken)."""
    done = [0] * clients
    errors: list[BaseException] = []
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        try:
            while time.perf_counter() < stop_at:
                run(timings)
                done[i] += 1
        except Exception as e:  # noqa: BLE001 - raised below, after every thread has stopped
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return sum(done) / (time.perf_counter() - t0), sum(done)


def bare_pair(alice: Person, bob: Person, contract: Path, work: Path, seconds: float = SECONDS) -> tuple[float,
                                                                                                      list[float]]:
    """(pairs/s, ms per pair) of two PAdES signatures in this process: Alice's token key on the contract, then
    Bob's on the result, as incremental revisions (``formats.sign_pdf``, ``formats.TokenSigner``)."""
    from formats import PdfSignOptions, TokenSigner, sign_pdf
    from hsm import Hsm

    h = Hsm(pin_state=work / "bare-pins.json")
    signers = []
    for p in (alice, bob):
        token = h.token(label=p.token)
        token.login(PIN)
        signers.append((token, TokenSigner(token, p.key_id)))
    one, two = work / "bare-1.pdf", work / "bare-2.pdf"
    ms: list[float] = []
    try:
        stop_at = time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            sign_pdf(contract, one, signers[0][1], PdfSignOptions(field_name="signet-bare-1"))
            sign_pdf(one, two, signers[1][1], PdfSignOptions(field_name="signet-bare-2"))
            ms.append((time.perf_counter() - t) * 1000)
        return len(ms) / (time.perf_counter() - t0), ms
    finally:
        for token, _ in signers:
            token.logout()


# -- the run ----------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--profiled-server"]:
        sys.exit(serve_profiled(Path(args[1]), args[2:]))
    run()


def run() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-envelopes-"))
    server = None
    people = [Person("Alice Bench 爱丽", "alice", "+8613900000001", "alice@bench.example", "bench-alice"),
              Person("Bob Bench 博", "bob", "+8613900000002", "bob@bench.example", "bench-bob")]
    profile_out = state / "server-profile.json"
    try:
        _tokens(state, [SERVER_TOKEN, *(p.token for p in people)])
        from formats.samplepdf import make_contract_pdf
        from scripts.processes import ServerProcess, server_cli, write_server_config

        env = write_server_config(state / "server", SERVER_TOKEN, PIN, "[approval]\nfour_eyes = false\n",
                                  organisation="Signet Bench", otp_hourly_limit=1_000_000)
        p = server_cli(env, "server.main", "init", "--config", str(env.config))
        if p.returncode != 0:
            raise RuntimeError(f"signet-server init: {p.stderr.strip()}")
        server = ServerProcess(env, log_path=state / "server.log",
                               python_args=("-m", "bench.envelope_journeys", "--profiled-server", str(profile_out)))
        org = _admin(env, "org", "create", "Bench Leasing")["id"]
        _admin(env, "operator-cert", "issue", "--org", org, "--login", "bench-operator", "--out",
               str(state / "operator"))
        outbox = Outbox(env)
        _register(env, state / "operator", outbox, people)
        for person in people:
            _enroll(env, outbox, person, state)
        alice, bob = people
        work = state / "work"
        work.mkdir()
        contract = work / "contract.pdf"
        make_contract_pdf(contract, "Bench lease", ["Alice Bench", "Bob Bench"], pages=2)

        def one(timings: Timings | None) -> None:
            journey(alice, bob, outbox, work, timings)

        one(None)  # warm-up: first connections, first validation
        print(f"envelope journeys: {SECONDS:g} s per variant x {ROUNDS} rounds; 1 and {CLIENTS} clients; server "
              f"{env.api}, agents {alice.agent.socket.parent.parent.name} and {bob.agent.socket.parent.parent.name}",
              flush=True)
        seq, par, pair_ms = Timings(), Timings(), []

        def bare() -> float:
            r, ms = bare_pair(alice, bob, contract, work)
            pair_ms.extend(ms)
            return r

        runs = alternate({"bare": bare,
                          "one": lambda: journeys_per_second(1, one, seq)[0],
                          "many": lambda: journeys_per_second(CLIENTS, one, par)[0]}, ROUNDS)
        report = _rates(runs, pair_ms, {"1 client": seq, f"{CLIENTS} clients": par})

        # profiling phase: the same journeys, 1 client, with the server's stack sampler on
        prof_timings = Timings()
        server.proc.send_signal(signal.SIGUSR1)
        rate, count = journeys_per_second(1, one, prof_timings)
        server.proc.send_signal(signal.SIGUSR2)
        report.add("journeys, 1 client, server sampled", rate, "env/s", baseline="journeys, 1 client")
        for person in people:
            person.client.close()
            person.link.close()
            person.agent.stop()
        server.stop()  # the sampler writes its samples as the server exits
        server = None
        prof = analyse(profile_out, count)
        for name, per_journey in prof.by_purpose.items():
            report.add(f"server per journey: {name}", per_journey, "ms", quiet=True)
        report.finish()
        _print_steps({"1 client": seq, f"{CLIENTS} clients": par})
        _print_profile(prof, statistics.median(prof_timings.steps["journey"]))
    except BaseException:
        if server is not None:
            print("server log (last 30 lines):\n" + "\n".join(server.log.splitlines()[-30:]), flush=True)
        raise
    finally:
        for person in people:
            if person.agent is not None and person.agent.alive:
                person.agent.stop()
        if server is not None and server.alive:
            server.kill()
        shutil.rmtree(state, ignore_errors=True)


def _rates(runs: dict[str, list[float]], pair_ms: list[float], variants: dict[str, Timings]) -> Report:
    report = Report("envelope_journeys")
    bare_name = "bare: 2 PAdES signatures in-process (same tokens)"
    report.add(bare_name, runs["bare"], "pairs/s")
    report.add("journeys, 1 client", runs["one"], "env/s", baseline=bare_name)
    report.add(f"journeys, {CLIENTS} clients", runs["many"], "env/s", baseline=bare_name)
    pair_p50, pair_p95 = percentiles(pair_ms, (50, 95))
    report.add("bare pair p50", pair_p50, "ms")
    report.add("bare pair p95", pair_p95, "ms")
    for label, timings in variants.items():
        j50, j95 = percentiles(timings.steps["journey"], (50, 95))
        report.add(f"journey p50, {label}", j50, "ms", baseline="bare pair p50")
        report.add(f"journey p95, {label}", j95, "ms", baseline="bare pair p50")
        for step, values in timings.steps.items():
            for q, v in zip((50, 95), percentiles(values, (50, 95)), strict=True):
                report.add(f"{label}: {step} p{q}", v, "ms", quiet=True)
    return report


def _print_steps(variants: dict[str, Timings]) -> None:
    print("\n== journey steps (ms, p50 / p95; the client's view) ==")
    print(f"  {'step':<30}" + "".join(f"{name:>22}" for name in variants))
    for step in next(iter(variants.values())).steps:
        cells = []
        for timings in variants.values():
            p50, p95 = percentiles(timings.steps.get(step, []), (50, 95))
            cells.append(f"{p50:10.1f} / {p95:7.1f}")
        print(f"  {step:<30}" + "".join(f"{c:>22}" for c in cells))


def _print_profile(prof: Profile, journey_ms: float) -> None:
    in_rpcs = sum(prof.by_rpc.values())
    print(f"\n== where the server's time goes == ({prof.journeys} journeys, 1 client, {prof.seconds:.1f} s sampled "
          f"every {SAMPLE_SECONDS * 1000:g} ms; journey p50 {journey_ms:.0f} ms as the client saw it, of which "
          f"{in_rpcs:.0f} ms inside envelope RPCs on the server)")
    print("  by RPC (ms of server time per journey):")
    for name, ms in prof.by_rpc.items():
        print(f"    {name:<44} {ms:8.1f} ms  {ms / in_rpcs:6.1%}")
    print("  by what the RPC threads were doing:")
    for name, ms in prof.by_purpose.items():
        print(f"    {name:<44} {ms:8.1f} ms  {ms / in_rpcs:6.1%}")
    print("  inside revision validation (formats/revision.py step -> what it was calling), the largest:")
    for name, ms in prof.by_validation_step.items():
        print(f"    {name:<44} {ms:8.1f} ms  {ms / in_rpcs:6.1%}")
    if prof.background:
        print(f"  envelope background threads (notice dispatch, scheduler), busy: {prof.background:.1f} ms per journey")


if __name__ == "__main__":
    main()
