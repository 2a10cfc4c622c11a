"""Agent configuration: one frozen dataclass loaded from TOML and validated at load.

Paths default to the XDG base directories: the socket lives in
``$XDG_RUNTIME_DIR/signet/agent.sock``; without ``XDG_RUNTIME_DIR`` (cron, some
containers) it falls back to ``/tmp/signet-<uid>/agent.sock`` (the directory is
created 0700 and refused if someone else owns it).  State (journal, usage
counters, wrong-PIN counters) lives in ``$XDG_STATE_HOME/signet`` or
``~/.local/state/signet``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

LOCAL_CALLER = "local"
MiB = 1024 * 1024


def default_socket_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "signet" / "agent.sock"
    return Path(f"/tmp/signet-{os.getuid()}") / "agent.sock"


def default_state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "signet"


@dataclass(frozen=True)
class TlsConfig:
    """TCP listener with mutual TLS: clients must present a certificate issued by ``client_ca``."""

    listen: str
    certificate: Path
    private_key: Path
    client_ca: Path
    private_key_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class UnlockPolicy:
    """Upper bounds of one Unlock grant; callers may ask for less, never more."""

    max_seconds: int = 300
    max_signatures: int = 1000
    allow_per_call_pin: bool = True


@dataclass(frozen=True)
class KeyRule:
    """Who may use a key (by CKA_ID hex and/or label), and how many signatures it may ever make."""

    callers: tuple[str, ...]
    key_id: str | None = None
    label: str | None = None
    usage_limit: int | None = None

    def matches(self, key_id: str, label: str | None) -> bool:
        if self.key_id is not None and self.key_id != key_id:
            return False
        if self.label is not None and self.label != label:
            return False
        return True

    @property
    def counter_name(self) -> str:
        return f"id:{self.key_id}" if self.key_id else f"label:{self.label}"


@dataclass(frozen=True)
class AgentConfig:
    socket: Path = field(default_factory=default_socket_path)
    state_dir: Path = field(default_factory=default_state_dir)
    pkcs11_module: str | None = None
    max_pin_failures: int = 5
    max_message_bytes: int = 4 * MiB
    max_document_bytes: int = 256 * MiB
    chunk_bytes: int = 1 * MiB
    # documents up to this size may travel inline in a SignPdf/SignDetached header (and outputs up to it come back
    # inline in the result): one message each way instead of header + chunks + result; 0 disables
    max_inline_bytes: int = 1 * MiB
    workers: int = 16
    sign_threads: int = 2
    pdf_workers: int = 2
    token_poll_seconds: float = 1.0
    trust_roots: tuple[Path, ...] = ()
    log_level: str = "INFO"
    unlock: UnlockPolicy = field(default_factory=UnlockPolicy)
    tls: TlsConfig | None = None
    default_callers: tuple[str, ...] = (LOCAL_CALLER,)
    admin_callers: tuple[str, ...] = (LOCAL_CALLER,)
    keys: tuple[KeyRule, ...] = ()

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


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ConfigError(f"{where}.{key} must be a {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _positive(value: int | float, name: str, minimum: float = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


def _path(base: Path, value: str) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    return p if p.is_absolute() else (base / p)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings")
    return tuple(value)


def _unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"unknown setting(s) in [{where}]: {', '.join(extra)}")


def parse(data: dict[str, Any], base: Path) -> AgentConfig:
    """Validate a parsed TOML document; relative paths are relative to ``base``."""
    _unknown(data, {"agent", "unlock", "tcp", "policy"}, "top level")
    a = data.get("agent", {})
    _unknown(a, {"socket", "state_dir", "pkcs11_module", "max_pin_failures", "max_message_bytes",
                 "max_document_bytes", "chunk_bytes", "max_inline_bytes", "workers", "sign_threads", "pdf_workers",
                 "token_poll_seconds", "trust_roots", "log_level"}, "agent")
    kw: dict[str, Any] = {}
    if "socket" in a:
        kw["socket"] = _path(base, _get(a, "socket", str, "agent"))
    if "state_dir" in a:
        kw["state_dir"] = _path(base, _get(a, "state_dir", str, "agent"))
    kw["pkcs11_module"] = _get(a, "pkcs11_module", str, "agent") or None
    for name in ("max_pin_failures", "max_message_bytes", "max_document_bytes", "chunk_bytes", "workers",
                 "sign_threads"):
        if name in a:
            kw[name] = _get(a, name, int, "agent")
            _positive(kw[name], f"agent.{name}")
    if "pdf_workers" in a:
        kw["pdf_workers"] = _get(a, "pdf_workers", int, "agent")
        _positive(kw["pdf_workers"], "agent.pdf_workers", 0)
    if "token_poll_seconds" in a:
        kw["token_poll_seconds"] = _get(a, "token_poll_seconds", float, "agent")
        _positive(kw["token_poll_seconds"], "agent.token_poll_seconds", 0.05)
    if "trust_roots" in a:
        kw["trust_roots"] = tuple(_path(base, p) for p in _strings(a["trust_roots"], "agent.trust_roots"))
    if "log_level" in a:
        kw["log_level"] = _get(a, "log_level", str, "agent").upper()
        if kw["log_level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("agent.log_level must be DEBUG, INFO, WARNING or ERROR")
    chunk = kw.get("chunk_bytes", AgentConfig.chunk_bytes)
    max_message = kw.get("max_message_bytes", AgentConfig.max_message_bytes)
    if chunk + 64 * 1024 > max_message:
        raise ConfigError("agent.chunk_bytes must be at least 64 KiB below agent.max_message_bytes")
    if "max_inline_bytes" in a:
        kw["max_inline_bytes"] = _get(a, "max_inline_bytes", int, "agent")
        _positive(kw["max_inline_bytes"], "agent.max_inline_bytes", 0)
        if kw["max_inline_bytes"] + 64 * 1024 > max_message:
            raise ConfigError("agent.max_inline_bytes must be at least 64 KiB below agent.max_message_bytes")
    else:  # never more than a chunk (no larger than the messages the agent already takes), nor than a document
        kw["max_inline_bytes"] = min(AgentConfig.max_inline_bytes, chunk,
                                     kw.get("max_document_bytes", AgentConfig.max_document_bytes))

    u = data.get("unlock", {})
    _unknown(u, {"max_seconds", "max_signatures", "allow_per_call_pin"}, "unlock")
    unlock = UnlockPolicy(
        max_seconds=_get(u, "max_seconds", int, "unlock", 300),
        max_signatures=_get(u, "max_signatures", int, "unlock", 1000),
        allow_per_call_pin=_get(u, "allow_per_call_pin", bool, "unlock", True),
    )
    _positive(unlock.max_seconds, "unlock.max_seconds")
    _positive(unlock.max_signatures, "unlock.max_signatures")
    kw["unlock"] = unlock

    if "tcp" in data:
        t = data["tcp"]
        _unknown(t, {"listen", "certificate", "private_key", "client_ca", "private_key_password"}, "tcp")
        missing = [k for k in ("listen", "certificate", "private_key", "client_ca") if k not in t]
        if missing:
            raise ConfigError(f"[tcp] needs {', '.join(missing)} (mutual TLS is mandatory on TCP)")
        listen = _get(t, "listen", str, "tcp")
        if ":" not in listen:
            raise ConfigError(f"tcp.listen must be HOST:PORT, got {listen!r}")
        kw["tls"] = TlsConfig(
            listen=listen,
            certificate=_path(base, _get(t, "certificate", str, "tcp")),
            private_key=_path(base, _get(t, "private_key", str, "tcp")),
            client_ca=_path(base, _get(t, "client_ca", str, "tcp")),
            private_key_password=_get(t, "private_key_password", str, "tcp") or None,
        )
        for what in ("certificate", "private_key", "client_ca"):
            if not getattr(kw["tls"], what).is_file():
                raise ConfigError(f"tcp.{what}: file {getattr(kw['tls'], what)} does not exist")

    p = data.get("policy", {})
    _unknown(p, {"default_callers", "admin_callers", "key"}, "policy")
    for name in ("default_callers", "admin_callers"):
        if name in p:
            kw[name] = _strings(p[name], f"policy.{name}") if p[name] else ()
    rules = []
    for i, k in enumerate(p.get("key", [])):
        where = f"policy.key[{i}]"
        _unknown(k, {"key_id", "label", "callers", "usage_limit"}, where)
        key_id = _get(k, "key_id", str, where)
        label = _get(k, "label", str, where)
        if not key_id and not label:
            raise ConfigError(f"{where} needs key_id or label")
        if key_id:
            try:
                key_id = bytes.fromhex(key_id).hex()
            except ValueError:
                raise ConfigError(f"{where}.key_id must be hex (CKA_ID as `signet keys` shows it)") from None
        limit = _get(k, "usage_limit", int, where)
        if limit is not None:
            _positive(limit, f"{where}.usage_limit")
        rules.append(KeyRule(callers=_strings(k.get("callers", []), f"{where}.callers"),
                             key_id=key_id, label=label, usage_limit=limit))
    kw["keys"] = tuple(rules)
    return AgentConfig(**kw)


def load(path: str | os.PathLike[str]) -> AgentConfig:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {p} is not valid TOML: {e}") from e
    return parse(data, p.resolve().parent)
