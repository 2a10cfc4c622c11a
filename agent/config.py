"""Agent configuration: one frozen dataclass per TOML table, each built by its own ``from_table``.

Every problem in the file is reported at once, each naming its setting and the expected type in words.
Paths default to the XDG base directories: the socket lives in ``$XDG_RUNTIME_DIR/signet/agent.sock``;
without ``XDG_RUNTIME_DIR`` (cron, some containers) the agent refuses to guess: set ``agent.socket``
(a ``/tmp`` path is accepted only when written there explicitly).  State (journal, usage counters, wrong-PIN
counters, the TLS files of enrollment) lives in ``$XDG_STATE_HOME/signet`` or ``~/.local/state/signet``.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signet.secrets import SecretUnavailable, read_env_secret, read_file_secret
from signet.tomlconf import ConfigProblems, Problems, Table, load_toml

from .errors import ConfigError
from .paths import default_socket_path, default_state_dir

LOCAL_CALLER = "local"
MiB = 1024 * 1024
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# a caller pattern: local, *, tls:*, tls:<SAN URI>, tls-sha256:<64 hex> (the client certificate's fingerprint)
_CALLER = re.compile(r"^(local|\*|tls:\*|tls:[a-z][a-z0-9+.-]*:\S+|tls-sha256:[0-9a-f]{64})$")


class Revocation(enum.Enum):
    """How a TLS client's certificate is checked against its CA's CRL."""

    REQUIRE = "require"  # the certificate must name a CRL, and the CRL must say it is good
    IF_PRESENT = "if-present"  # check when the certificate names a CRL; an unreachable CRL refuses the call
    OFF = "off"


@dataclass(frozen=True)
class TlsConfig:
    """TCP listener with mutual TLS: clients must present a certificate issued by ``client_ca`` (a TLS CA)."""

    listen: str
    certificate: Path
    private_key: Path
    client_ca: Path
    private_key_password: str | None = field(default=None, repr=False)
    revocation: Revocation = Revocation.REQUIRE
    crl_refresh_seconds: int = 300
    crl_timeout_seconds: float = 5.0

    @classmethod
    def from_table(cls, t: Table, base: Path) -> TlsConfig | None:
        if not t.data:
            return None
        missing = [k for k in ("listen", "certificate", "private_key", "client_ca") if not t.has(k)]
        if missing:
            t.problems.add(f"[tcp] needs {', '.join(missing)} (mutual TLS is mandatory on TCP)")
            return None
        listen = t.text("listen")
        if ":" not in listen:
            t.problems.add(f"tcp.listen must be HOST:PORT, got {listen!r}")
        paths = {k: t.path(k, base) or base for k in ("certificate", "private_key", "client_ca")}
        for key, p in paths.items():
            if not p.is_file():
                t.problems.add(f"tcp.{key}: file {p} does not exist")
        password = None
        env, file = t.text("private_key_password_env"), t.text("private_key_password_file")
        try:
            if env and file:
                t.problems.add("[tcp] give private_key_password_env or private_key_password_file, not both")
            elif env:
                password = read_env_secret(env, "TLS key password")
            elif file:
                password = read_file_secret(t.path("private_key_password_file", base) or base, "TLS key password")
        except SecretUnavailable as e:
            t.problems.add(f"[tcp] {e}")
        return cls(listen=listen, certificate=paths["certificate"], private_key=paths["private_key"],
                   client_ca=paths["client_ca"], private_key_password=password,
                   revocation=t.enum("revocation", Revocation, Revocation.REQUIRE),
                   crl_refresh_seconds=t.integer("crl_refresh_seconds", 300, minimum=1),
                   crl_timeout_seconds=t.number("crl_timeout_seconds", 5.0, minimum=0.1, maximum=60))


UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class UnlockPolicy:
    """Upper bounds of one Unlock grant; callers may ask for less, never more.  A grant covers one document by
    default (``max_signatures`` 1): a signer unlocks for what they are about to sign."""

    max_seconds: int = 300
    max_signatures: int = 1
    allow_per_call_pin: bool = True
    pin_tries_per_minute: int = 5  # PIN attempts (Unlock or per-call PINs) per caller and minute

    @classmethod
    def from_table(cls, t: Table) -> UnlockPolicy:
        # both travel in uint32 fields of the API (GetInfo, Unlock)
        return cls(max_seconds=t.integer("max_seconds", 300, minimum=1, maximum=UINT32_MAX),
                   max_signatures=t.integer("max_signatures", 1, minimum=1, maximum=UINT32_MAX),
                   allow_per_call_pin=t.flag("allow_per_call_pin", True),
                   pin_tries_per_minute=t.integer("pin_tries_per_minute", 5, minimum=1))


@dataclass(frozen=True)
class Confirmation:
    """A program that must approve each signature (ssh-askpass style): JSON on stdin, exit 0 = yes."""

    program: tuple[str, ...]  # argv
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class KeyRule:
    """Who may use a key (by CKA_ID hex and/or label), how many signatures it may ever make, whether it signs raw
    digests (which show the signer nothing) and which program must confirm each signature."""

    callers: tuple[str, ...]
    key_id: str | None = None
    label: str | None = None
    usage_limit: int | None = None
    allow_digests: bool = False
    confirm: Confirmation | None = None

    def matches(self, key_id: str, label: str | None) -> bool:
        if self.key_id is not None and self.key_id != key_id:
            return False
        return not (self.label is not None and self.label != label)

    @property
    def counter_name(self) -> str:
        return f"id:{self.key_id}" if self.key_id else f"label:{self.label}"


def _confirmation(t: Table, base: Path) -> Confirmation | None:
    program = t.text("confirm")
    if not program:
        return None
    argv = tuple(program.split())
    exe = Path(argv[0]) if Path(argv[0]).is_absolute() else base / argv[0]
    if not exe.is_file() or not os.access(exe, os.X_OK):
        t.problems.add(f"{t.name('confirm')}: {exe} is not an executable file")
    return Confirmation((str(exe), *argv[1:]), t.number("confirm_timeout_seconds", 60.0, minimum=1, maximum=3600))


def _callers(t: Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if not t.has(key):
        return default
    values = t.strings(key) if t.data[key] else ()
    for v in values:
        if not _CALLER.match(v):
            t.problems.add(f"{t.name(key)}: {v!r} is not a caller: use local, *, tls:*, tls:<the client "
                           "certificate's SAN URI> or tls-sha256:<its SHA-256 fingerprint in hex> (common names "
                           "are not unique and do not identify a caller)")
    return values


@dataclass(frozen=True)
class PolicyConfig:
    default_callers: tuple[str, ...] = (LOCAL_CALLER,)
    admin_callers: tuple[str, ...] = (LOCAL_CALLER,)
    confirm: Confirmation | None = None  # for keys whose rule names none
    keys: tuple[KeyRule, ...] = ()

    @classmethod
    def from_table(cls, t: Table, base: Path) -> PolicyConfig:
        rules = []
        for k in t.tables("key", {"key_id", "label", "callers", "usage_limit", "allow_digests", "confirm",
                                  "confirm_timeout_seconds"}):
            key_id = k.text("key_id") or None
            label = k.text("label") or None
            if not key_id and not label:
                k.problems.add(f"[{k.where}] needs key_id or label")
            if key_id:
                try:
                    key_id = bytes.fromhex(key_id).hex()
                except ValueError:
                    k.problems.add(f"{k.name('key_id')} must be hex (the CKA_ID as `signet keys` shows it)")
            limit = k.integer("usage_limit", 0, minimum=1) if k.has("usage_limit") else None
            rules.append(KeyRule(callers=_callers(k, "callers", ()), key_id=key_id, label=label, usage_limit=limit,
                                 allow_digests=k.flag("allow_digests", False), confirm=_confirmation(k, base)))
        return cls(default_callers=_callers(t, "default_callers", (LOCAL_CALLER,)),
                   admin_callers=_callers(t, "admin_callers", (LOCAL_CALLER,)),
                   confirm=_confirmation(t, base), keys=tuple(rules))


@dataclass(frozen=True)
class BridgeConfig:
    """The local bridge (:mod:`agent.bridge`): a portal page may ask this agent to sign an envelope's revision.

    Off unless ``listen`` is set; loopback only; only pages of ``allowed_origins`` may ask; every request is
    approved (and the PIN given) in the ``confirm`` program, never in the web page."""

    listen: str = ""  # 127.0.0.1:PORT
    allowed_origins: tuple[str, ...] = ()
    confirm: Confirmation | None = None
    token: str = ""  # label of the token to sign with; empty: the only token present

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @classmethod
    def from_table(cls, t: Table, base: Path) -> BridgeConfig:
        listen = t.text("listen")
        if not listen:
            return cls()
        host, _, port = listen.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit() or not 0 < int(port) < 65536:
            t.problems.add(f"bridge.listen must be 127.0.0.1:PORT (loopback only), got {listen!r}")
        origins = t.strings("allowed_origins")
        if not origins:
            t.problems.add("bridge.allowed_origins must name the portal origins (https://host[:port]) that may ask "
                           "this agent to sign")
        for o in origins:
            if not re.fullmatch(r"https://[A-Za-z0-9.\-\[\]:]+", o):
                t.problems.add(f"bridge.allowed_origins: {o!r} is not an origin like https://portal.example.com")
        confirm = _confirmation(t, base)
        if confirm is None:
            t.problems.add("bridge.confirm must name the program that shows each request and asks for the PIN "
                           "(the web page never sees it)")
        return cls(listen=listen, allowed_origins=tuple(origins), confirm=confirm, token=t.text("token"))


@dataclass(frozen=True)
class KioskConfig:
    """Kiosk mode (:mod:`agent.kiosk`): a full-screen signing station on 127.0.0.1 for the holder of the card
    inserted; the agent reaches signet-server's API with the station's certificate (``station_dir``, written by
    `signet-admin station-cert issue`, or ``station_cert``/``station_key``/``server_ca``)."""

    enabled: bool = False
    listen: str = "127.0.0.1:17390"
    idle_seconds: int = 120
    server_api: str = ""  # HOST:PORT of signet-server's mutual-TLS API (default: station.json's "api")
    server_name: str = ""  # the TLS name to check when server_api is an address not in the server's certificate
    station_cert: Path | None = None
    station_key: Path | None = None
    server_ca: Path | None = None

    @classmethod
    def from_table(cls, t: Table, base: Path) -> KioskConfig:
        if not t.flag("enabled", False):
            return cls()
        listen = t.text("listen", cls.listen)
        host, _, port = listen.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit() or not 0 < int(port) < 65536:
            t.problems.add(f"kiosk.listen must be 127.0.0.1:PORT (loopback only), got {listen!r}")
        station = t.path("station_dir", base)
        names = (("station_cert", "station.crt"), ("station_key", "station.key"), ("server_ca", "ca.pem"))
        files = {k: t.path(k, base) or (station / f if station else None) for k, f in names}
        for k, p in files.items():
            if p is None or not p.is_file():
                t.problems.add(f"kiosk.{k}: {p or 'not set'} is not a file (set kiosk.station_dir to the directory "
                               "`signet-admin station-cert issue` wrote, or kiosk.{k})")
        api = t.text("server_api")
        if not api and station is not None and (station / "station.json").is_file():
            import json

            api = str(json.loads((station / "station.json").read_text()).get("api") or "")
        if ":" not in api:
            t.problems.add("kiosk.server_api must be HOST:PORT of signet-server's API listener")
        return cls(enabled=True, listen=listen, idle_seconds=t.integer("idle_seconds", 120, minimum=5, maximum=3600),
                   server_api=api, server_name=t.text("server_name"), station_cert=files["station_cert"],
                   station_key=files["station_key"], server_ca=files["server_ca"])


@dataclass(frozen=True)
class VerifyConfig:
    """How the agent verifies signatures: revocation fetched online by default, and within which time."""

    revocation: str = "online"  # online | offline
    fetch_timeout_seconds: float = 10.0
    check_before_signing: bool = True  # refuse to sign with a certificate its CA reports revoked
    refuse_unknown_status: bool = False  # also refuse when the CA's responder cannot say (unknown_status = "refuse")

    @classmethod
    def from_table(cls, t: Table) -> VerifyConfig:
        return cls(revocation=t.text("revocation", "online", choices=("online", "offline")),
                   fetch_timeout_seconds=t.number("fetch_timeout_seconds", 10.0, minimum=0.5, maximum=120),
                   check_before_signing=t.flag("check_before_signing", True),
                   refuse_unknown_status=t.text("unknown_status", "allow", choices=("allow", "refuse")) == "refuse")


@dataclass(frozen=True)
class AgentConfig:
    socket: Path = field(default_factory=lambda: default_socket_path() or Path("agent.sock"))
    state_dir: Path = field(default_factory=default_state_dir)
    pkcs11_module: str | None = None
    max_pin_failures: int = 5
    max_message_bytes: int = 4 * MiB
    max_document_bytes: int = 256 * MiB
    chunk_bytes: int = 1 * MiB
    # documents up to this size may travel inline in a SignPdf/SignDetached header (and outputs up to it come back
    # inline in the result): one message each way instead of header + chunks + result; 0 disables
    max_inline_bytes: int = 1 * MiB
    workers: int = 16  # gRPC threads
    document_streams: int = 4  # document uploads (sign or verify) at once; more are refused at once
    upload_idle_seconds: float = 30.0  # longest pause between two chunks of an upload
    upload_seconds: float = 600.0  # longest whole upload
    sign_threads: int = 2
    pdf_workers: int = 2  # document worker processes for signing (0 = in-process)
    verify_workers: int = 1  # worker processes for verification (its own pool: hostile PDFs cannot starve signing)
    job_seconds: float = 120.0  # wall-clock limit of one document job in a worker
    worker_memory_mib: int = 1024  # RLIMIT_AS of a worker process
    token_poll_seconds: float = 1.0
    token_reinit_seconds: float = 5.0  # least time between two idle reinitialisations (new SoftHSM tokens appear)
    trust_roots: tuple[Path, ...] = ()
    timestamp_urls: tuple[str, ...] = ()  # TSAs a caller may name in a request (exact URLs)
    log_level: str = "INFO"
    unlock: UnlockPolicy = field(default_factory=UnlockPolicy)
    tls: TlsConfig | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)

    @property
    def default_callers(self) -> tuple[str, ...]:
        return self.policy.default_callers

    @property
    def admin_callers(self) -> tuple[str, ...]:
        return self.policy.admin_callers

    @property
    def keys(self) -> tuple[KeyRule, ...]:
        return self.policy.keys

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.db"

    @property
    def usage_path(self) -> Path:
        return self.state_dir / "usage.db"

    @property
    def pin_state_path(self) -> Path:
        return self.state_dir / "pin-failures.json"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"


_AGENT_KEYS = {"socket", "state_dir", "pkcs11_module", "max_pin_failures", "max_message_bytes", "max_document_bytes",
               "chunk_bytes", "max_inline_bytes", "workers", "document_streams", "upload_idle_seconds",
               "upload_seconds", "sign_threads", "pdf_workers", "verify_workers", "job_seconds", "worker_memory_mib",
               "token_poll_seconds", "token_reinit_seconds", "trust_roots", "timestamp_urls", "log_level"}


def _socket(a: Table, base: Path) -> Path | None:
    socket = a.path("socket", base)
    if socket is not None:
        return socket
    default = default_socket_path()
    if default is None:
        a.problems.add("agent.socket is not set and $XDG_RUNTIME_DIR names no directory: set agent.socket "
                       "(a private directory; /tmp only if you must)")
    return default


def _inline_bytes(a: Table, chunk: int, message: int, document: int) -> int:
    if not a.has("max_inline_bytes"):  # never more than a chunk (no larger than the messages the agent takes)
        return min(AgentConfig.max_inline_bytes, chunk, document)
    inline = a.integer("max_inline_bytes", AgentConfig.max_inline_bytes, minimum=0)
    if inline + 64 * 1024 > message:
        a.problems.add("agent.max_inline_bytes must be at least 64 KiB below agent.max_message_bytes")
    return inline


def _agent_table(a: Table, base: Path) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    socket = _socket(a, base)
    if socket is not None:
        kw["socket"] = socket
    state = a.path("state_dir", base)
    if state is not None:
        kw["state_dir"] = state
    kw["pkcs11_module"] = a.text("pkcs11_module") or None
    for name in ("max_pin_failures", "max_message_bytes", "max_document_bytes", "chunk_bytes", "workers",
                 "document_streams", "sign_threads", "worker_memory_mib"):
        kw[name] = a.integer(name, getattr(AgentConfig, name), minimum=1)
    for name in ("pdf_workers", "verify_workers"):
        kw[name] = a.integer(name, getattr(AgentConfig, name), minimum=0)
    for name, low in (("upload_idle_seconds", 0.1), ("upload_seconds", 1.0), ("job_seconds", 1.0),
                      ("token_poll_seconds", 0.05), ("token_reinit_seconds", 0.0)):
        kw[name] = a.number(name, getattr(AgentConfig, name), minimum=low)
    kw["trust_roots"] = a.paths("trust_roots", base)
    urls = a.strings("timestamp_urls")
    for u in urls:
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", u):
            a.problems.add(f"agent.timestamp_urls: {u!r} is not an http(s) URL")
    kw["timestamp_urls"] = urls
    kw["log_level"] = a.text("log_level", "INFO", choices=_LEVELS).upper()
    chunk, message = int(kw["chunk_bytes"]), int(kw["max_message_bytes"])
    if chunk + 64 * 1024 > message:
        a.problems.add("agent.chunk_bytes must be at least 64 KiB below agent.max_message_bytes")
    kw["max_inline_bytes"] = _inline_bytes(a, chunk, message, int(kw["max_document_bytes"]))
    return kw


def parse(data: dict[str, object], base: Path, source: str = "the agent configuration") -> AgentConfig:
    """Validate a parsed TOML document; relative paths are relative to ``base``; every problem at once."""
    problems = Problems(source)
    top = Table(data, "", problems, {"agent", "unlock", "tcp", "policy", "verify", "bridge", "kiosk"})
    kw = _agent_table(top.table("agent", _AGENT_KEYS), base)
    kw["unlock"] = UnlockPolicy.from_table(top.table("unlock", {"max_seconds", "max_signatures",
                                                                "allow_per_call_pin", "pin_tries_per_minute"}))
    kw["tls"] = TlsConfig.from_table(top.table("tcp", {"listen", "certificate", "private_key", "client_ca",
                                                       "private_key_password_env", "private_key_password_file",
                                                       "revocation", "crl_refresh_seconds",
                                                       "crl_timeout_seconds"}), base)
    kw["policy"] = PolicyConfig.from_table(top.table("policy", {"default_callers", "admin_callers", "key", "confirm",
                                                                "confirm_timeout_seconds"}), base)
    kw["verify"] = VerifyConfig.from_table(top.table("verify", {"revocation", "fetch_timeout_seconds",
                                                                "check_before_signing", "unknown_status"}))
    kw["bridge"] = BridgeConfig.from_table(top.table("bridge", {"listen", "allowed_origins", "confirm",
                                                                "confirm_timeout_seconds", "token"}), base)
    kw["kiosk"] = KioskConfig.from_table(top.table("kiosk", {"enabled", "listen", "idle_seconds", "server_api",
                                                             "server_name", "station_dir", "station_cert",
                                                             "station_key", "server_ca"}), base)
    problems.raise_if_any(ConfigError)
    return AgentConfig(**kw)


def load(path: str | os.PathLike[str]) -> AgentConfig:
    p = Path(path)
    return parse(load_toml(p, ConfigError), p.resolve().parent, str(p))


__all__ = ["LOCAL_CALLER", "AgentConfig", "BridgeConfig", "ConfigProblems", "Confirmation", "KeyRule", "KioskConfig",
           "PolicyConfig", "Revocation", "TlsConfig", "UnlockPolicy", "VerifyConfig", "default_socket_path",
           "default_state_dir", "load", "parse"]
