"""signet-server configuration: one frozen dataclass loaded from TOML and validated at load.

Relative paths are relative to the directory of the TOML file.  Secrets (the server token PIN,
the SMTP password, the webhook secret) are never written in the file: it names an environment
variable or a file (mode 0600 or stricter) holding each, they are read at load, and they are kept
out of every ``repr``.  Example (every key, with its default)::

    [server]
    state_dir = "state"                  # created 0700: store, TLS material, wrapped data keys
    store = ""                           # default sqlite:///<state_dir>/signet.sqlite
    organisation = "Signet"              # O= of the server's own certificates
    country = ""                         # optional C= of the server's certificates
    key_family = "rsa"                   # rsa (RSA-3072) | ec (P-384 CAs, P-256 others)
    log_level = "INFO"

    [hsm]
    module = ""                          # PKCS#11 module; default $SIGNET_PKCS11_MODULE or SoftHSM2
    token_label = "signet-server"
    pin_env = "SIGNET_SERVER_PIN"        # exactly one of pin_env and pin_file
    pin_file = ""

    [grpc]
    listen = "127.0.0.1:7443"            # mutual TLS: IdentityService, CertificateService
    enroll_listen = "127.0.0.1:7444"     # server-authenticated TLS: EnrollmentService
    server_names = ["localhost", "127.0.0.1"]   # DNS names / IPs in the server TLS certificate
    workers = 8

    [http]
    listen = "127.0.0.1:7080"            # OCSP, CRL, TSA, CA certificates
    base_url = ""                        # in certificates (AIA, CRL DP); default http://<listen>

    [secrets]
    source = "hsm"                       # hsm: data keys wrapped by the token's archive KEK | file
    hmac_key_file = ""                   # source = "file": >= 32 random bytes each, mode 0600
    box_key_file = ""

    [ca]
    validity_days = 730                  # signer certificates
    serial_policy = "document"           # document (IDCCN-...) | pseudonym (PSECN-...)
    client_validity_days = 365           # operator and agent TLS certificates
    external_roots = []                  # PEM/DER files trusted for RegisterExternalCertificate

    [otp]
    ttl_seconds = 300                    # at most 600
    min_interval_seconds = 60
    hourly_limit = 5

    [notify]
    default = "outbox"                   # outbox | smtp | webhook
    phone = ""                           # channel for phone numbers; default: default
    email = ""                           # channel for e-mail addresses; default: default
    [notify.smtp]                        # host, port, sender, security, username, password_env, cafile
    [notify.webhook]                     # url, secret_env, cafile, allow_http
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidArgument


class ConfigError(InvalidArgument):
    """The configuration file is missing, malformed or inconsistent; the message names the key."""

    reason = "CONFIG_INVALID"


_CHANNELS = ("outbox", "smtp", "webhook")
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "signet@localhost"
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: bytes = field(repr=False)
    cafile: str | None = None
    allow_http: bool = False


@dataclass(frozen=True)
class ServerConfig:
    path: Path
    state_dir: Path
    store_url: str
    organisation: str
    country: str | None
    key_family: str
    log_level: str
    pkcs11_module: str | None
    token_label: str
    pin: str = field(repr=False)
    grpc_listen: str = "127.0.0.1:7443"
    enroll_listen: str = "127.0.0.1:7444"
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    grpc_workers: int = 8
    http_listen: str = "127.0.0.1:7080"
    base_url: str = "http://127.0.0.1:7080"
    secrets_source: str = "hsm"
    hmac_key_file: Path | None = None
    box_key_file: Path | None = None
    leaf_validity_days: int = 730
    serial_policy: str = "document"
    client_validity_days: int = 365
    external_roots: tuple[Path, ...] = ()
    otp_ttl_seconds: int = 300
    otp_min_interval_seconds: int = 60
    otp_hourly_limit: int = 5
    notify_default: str = "outbox"
    notify_phone: str | None = None
    notify_email: str | None = None
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None

    # --- derived locations under state_dir ---
    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def pin_state_path(self) -> Path:
        return self.state_dir / "pin-failures.json"


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


class _Reader:
    """Typed access to one table; unknown keys are errors (typos must not pass silently)."""

    def __init__(self, table: dict[str, Any], where: str, known: set[str]) -> None:
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
        self.table, self.where = table, where

    def get(self, key: str, kind: type, default: Any) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"[{self.where}] {key} must be a {kind.__name__}")
        return value

    def text(self, key: str, default: str = "") -> str:
        return str(self.get(key, str, default)).strip()


def _read_secret_file(path: Path, what: str) -> bytes:
    try:
        st = path.stat()
    except OSError as e:
        raise ConfigError(f"{what} file {path} cannot be read: {e.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} file {path} is readable by others: chmod 600 it")
    return path.read_bytes()


def _secret(r: _Reader, env_key: str, file_key: str | None, what: str, base: Path, required: bool) -> str | None:
    env = r.text(env_key)
    file = r.text(file_key) if file_key else ""
    if env and file:
        raise ConfigError(f"[{r.where}] give {env_key} or {file_key}, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env} ([{r.where}] {env_key}) is not set")
        return value
    if file:
        text = _read_secret_file(base / file, what).decode("utf-8")
        return text.splitlines()[0] if text else ""
    if required:
        raise ConfigError(f"[{r.where}] needs {env_key}" + (f" or {file_key}" if file_key else ""))
    return None


def _address(value: str, key: str) -> str:
    m = _ADDRESS.match(value)
    if not m or not 0 <= int(m.group(2)) <= 65535:
        raise ConfigError(f"{key} = {value!r} must be HOST:PORT")
    return value


def _server_name(name: str) -> str:
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    if not re.match(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}$", name):
        raise ConfigError(f"[grpc] server_names: {name!r} is neither a DNS name nor an IP address")
    return name


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and check the TOML file; raises :class:`ConfigError` naming the offending key."""
    path = Path(path).resolve()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read the configuration {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    unknown = set(doc) - {"server", "hsm", "grpc", "http", "secrets", "ca", "otp", "notify"}
    if unknown:
        raise ConfigError(f"unknown table(s) in {path.name}: {', '.join(sorted(unknown))}")
    base = path.parent

    s = _Reader(_table(doc, "server"), "server",
                {"state_dir", "store", "organisation", "country", "key_family", "log_level"})
    state_dir = (base / s.text("state_dir", "state")).resolve()
    store_url = s.text("store") or f"sqlite:///{state_dir / 'signet.sqlite'}"
    organisation = s.text("organisation", "Signet")
    if not 0 < len(organisation) <= 40:
        raise ConfigError("[server] organisation must be 1 to 40 characters")
    country = s.text("country") or None
    if country is not None and not re.match(r"^[A-Z]{2}$", country):
        raise ConfigError("[server] country must be an ISO 3166 two-letter code such as CN")
    key_family = s.text("key_family", "rsa")
    if key_family not in ("rsa", "ec"):
        raise ConfigError("[server] key_family must be rsa or ec")
    log_level = s.text("log_level", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("[server] log_level must be DEBUG, INFO, WARNING or ERROR")

    h = _Reader(_table(doc, "hsm"), "hsm", {"module", "token_label", "pin_env", "pin_file"})
    if not h.table.get("pin_env") and not h.table.get("pin_file"):
        h.table = {**h.table, "pin_env": "SIGNET_SERVER_PIN"}
    pin = _secret(h, "pin_env", "pin_file", "the server token PIN", base, True)
    assert pin is not None

    g = _Reader(_table(doc, "grpc"), "grpc", {"listen", "enroll_listen", "server_names", "workers"})
    grpc_listen = _address(g.text("listen", "127.0.0.1:7443"), "[grpc] listen")
    enroll_listen = _address(g.text("enroll_listen", "127.0.0.1:7444"), "[grpc] enroll_listen")
    names = g.get("server_names", list, ["localhost", "127.0.0.1"])
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("[grpc] server_names must be a non-empty list of names")
    workers = g.get("workers", int, 8)
    if not 1 <= workers <= 256:
        raise ConfigError("[grpc] workers must be 1 to 256")

    w = _Reader(_table(doc, "http"), "http", {"listen", "base_url"})
    http_listen = _address(w.text("listen", "127.0.0.1:7080"), "[http] listen")
    base_url = w.text("base_url") or f"http://{http_listen}"
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", base_url) or base_url.endswith("/"):
        raise ConfigError("[http] base_url must be http(s)://host[:port][/path] without a trailing /")

    k = _Reader(_table(doc, "secrets"), "secrets", {"source", "hmac_key_file", "box_key_file"})
    source = k.text("source", "hsm")
    if source not in ("hsm", "file"):
        raise ConfigError("[secrets] source must be hsm or file")
    hmac_file = base / k.text("hmac_key_file") if k.text("hmac_key_file") else None
    box_file = base / k.text("box_key_file") if k.text("box_key_file") else None
    if source == "file" and (hmac_file is None or box_file is None):
        raise ConfigError("[secrets] source = \"file\" needs hmac_key_file and box_key_file")

    c = _Reader(_table(doc, "ca"), "ca", {"validity_days", "serial_policy", "client_validity_days",
                                          "external_roots"})
    validity = c.get("validity_days", int, 730)
    client_validity = c.get("client_validity_days", int, 365)
    if not 1 <= validity <= 3650 or not 1 <= client_validity <= 3650:
        raise ConfigError("[ca] validity_days and client_validity_days must be 1 to 3650")
    serial_policy = c.text("serial_policy", "document")
    if serial_policy not in ("document", "pseudonym"):
        raise ConfigError("[ca] serial_policy must be document or pseudonym")
    roots = c.get("external_roots", list, [])
    if not all(isinstance(x, str) for x in roots):
        raise ConfigError("[ca] external_roots must be a list of file names")

    o = _Reader(_table(doc, "otp"), "otp", {"ttl_seconds", "min_interval_seconds", "hourly_limit"})
    ttl = o.get("ttl_seconds", int, 300)
    if not 1 <= ttl <= 600:
        raise ConfigError("[otp] ttl_seconds must be 1 to 600 (codes expire within 10 minutes)")
    min_interval, hourly = o.get("min_interval_seconds", int, 60), o.get("hourly_limit", int, 5)
    if min_interval < 0 or hourly < 1:
        raise ConfigError("[otp] min_interval_seconds must be >= 0 and hourly_limit >= 1")

    n = _Reader(_table(doc, "notify"), "notify", {"default", "phone", "email", "smtp", "webhook"})
    chosen = {key: n.text(key, "outbox" if key == "default" else "") or None for key in ("default", "phone", "email")}
    for key, value in chosen.items():
        if value is not None and value not in _CHANNELS:
            raise ConfigError(f"[notify] {key} must be one of {', '.join(_CHANNELS)}")
    smtp = webhook = None
    if "smtp" in n.table:
        m = _Reader(_table(n.table, "smtp"), "notify.smtp",
                    {"host", "port", "sender", "security", "username", "password_env", "cafile"})
        if not m.text("host"):
            raise ConfigError("[notify.smtp] host is required")
        smtp = SmtpSettings(m.text("host"), m.get("port", int, 587), m.text("sender", "signet@localhost"),
                            m.text("security", "starttls"), m.text("username") or None,
                            _secret(m, "password_env", None, "the SMTP password", base, False),
                            m.text("cafile") or None)
    if "webhook" in n.table:
        wh = _Reader(_table(n.table, "webhook"), "notify.webhook", {"url", "secret_env", "cafile", "allow_http"})
        secret = _secret(wh, "secret_env", None, "the webhook secret", base, True)
        webhook = WebhookSettings(wh.text("url"), (secret or "").encode(), wh.text("cafile") or None,
                                  bool(wh.get("allow_http", bool, False)))
    used = {v for v in chosen.values() if v}
    if "smtp" in used and smtp is None or "webhook" in used and webhook is None:
        raise ConfigError("[notify] names a channel without its [notify.smtp] / [notify.webhook] table")

    return ServerConfig(
        path=path, state_dir=state_dir, store_url=store_url, organisation=organisation, country=country,
        key_family=key_family, log_level=log_level, pkcs11_module=h.text("module") or None,
        token_label=h.text("token_label", "signet-server"), pin=pin, grpc_listen=grpc_listen,
        enroll_listen=enroll_listen, server_names=tuple(_server_name(x) for x in names), grpc_workers=workers,
        http_listen=http_listen, base_url=base_url, secrets_source=source, hmac_key_file=hmac_file,
        box_key_file=box_file, leaf_validity_days=validity, serial_policy=serial_policy,
        client_validity_days=client_validity, external_roots=tuple(base / x for x in roots),
        otp_ttl_seconds=ttl, otp_min_interval_seconds=min_interval, otp_hourly_limit=hourly,
        notify_default=chosen["default"] or "outbox", notify_phone=chosen["phone"], notify_email=chosen["email"],
        smtp=smtp, webhook=webhook,
    )
