"""signet-server configuration: one frozen dataclass per TOML table, each built by its own ``from_table``.

Relative paths are relative to the directory of the TOML file.  Secrets (the server token PIN, the SMTP
password, the webhook secret) are never written in the file: it names an environment variable or a file
(mode 0600 or stricter) holding each; they are read at load and kept out of every ``repr``.  Every problem
in the file is reported at once, each naming its key.  Example (every key, with its default)::

    [server]
    state_dir = "state"                  # created 0700: store, TLS material, wrapped data keys
    store = ""                           # default sqlite:///<state_dir>/signet.sqlite; or
                                         # postgresql://USER@HOST:PORT/DB (several replicas; C collation)
    store_password_env = ""              # the PostgreSQL password: an environment variable or a file,
    store_password_file = ""             # never in the URL
    organisation = "Signet"              # O= of the server's own certificates
    country = ""                         # optional C= of the server's certificates
    key_family = "rsa"                   # rsa (RSA-3072) | ec (P-384 CAs, P-256 others)
    log_level = "INFO"
    mode = "production"                  # production | demo (demo allows the outbox as the only code channel)

    [hsm]
    module = ""                          # PKCS#11 module; default $SIGNET_PKCS11_MODULE or SoftHSM2
    token_label = "signet-server"
    pin_env = "SIGNET_SERVER_PIN"        # exactly one of pin_env and pin_file
    pin_file = ""

    [grpc]
    listen = "127.0.0.1:7443"            # mutual TLS: IdentityService, CertificateService, EnvelopeService
    enroll_listen = "127.0.0.1:7444"     # server-authenticated TLS: EnrollmentService
    server_names = ["localhost", "127.0.0.1"]   # DNS names / IPs in the server TLS certificate
    workers = 8

    [http]
    listen = "127.0.0.1:7080"            # OCSP, CRL, TSA, CA certificates
    base_url = ""                        # in certificates (AIA, CRL DP); default http://<listen>
    max_connections = 64                 # requests served at once
    request_deadline_seconds = 10        # a whole request (headers + body) must arrive within this
    rate_per_minute = 600                # requests per client address and minute (0 = unlimited)

    [csc]
    listen = ""                          # HOST:PORT of the Cloud Signature Consortium API (HTTPS, the gRPC
                                         # listeners' certificate); "" = off
    token_seconds = 3600                 # lifetime of an auth/login bearer token (60 to 86400)
    sad_seconds = 300                    # lifetime of a SAD from credentials/authorize (30 to 600)

    [portal]
    listen = ""                          # HOST:PORT of the recipients' portal (HTTPS, the gRPC listeners'
                                         # certificate); "" = off. On: notices carry a link to it
    base_url = ""                        # the links' start; default https://<listen>
    link_days = 14                       # how long a link stays valid (1 to 90)
    bridge = "http://127.0.0.1:17380"    # where token signers' agents serve their local bridge ([bridge] listen
                                         # in the agent); "" = token signers are shown the CLI command only
    posts_per_minute = 30                # form posts per client address and minute (more: 429)

    [secrets]
    source = "hsm"                       # hsm: data keys wrapped by the token's archive KEK | file
    hmac_key_file = ""                   # source = "file": >= 32 random bytes each, mode 0600
    box_key_file = ""

    [ca]
    validity_days = 730                  # signer certificates
    serial_policy = "document"           # document (IDCCN-...) | pseudonym (PSECN-...)
    client_validity_days = 365           # operator and agent TLS certificates
    external_roots = []                  # PEM/DER files trusted for RegisterExternalCertificate
    signing_policy_oid = "1.3.6.1.4.1.59541.1.1"   # certificatePolicies of token-key signer certificates
    remote_policy_oid = "1.3.6.1.4.1.59541.1.2"    # ... of remote-signing keys held on the server token
    seal_policy_oid = "1.3.6.1.4.1.59541.1.3"      # ... of the platform seal
    document_signing_eku = false         # add id-kp-documentSigning next to emailProtection

    [tsa]
    policy_oid = "1.3.6.1.4.1.59541.2.1"
    accuracy_seconds = 1

    [otp]
    ttl_seconds = 300                    # at most 600
    min_interval_seconds = 60
    hourly_limit = 5

    [enrollment]
    max_failures_per_day = 5             # wrong enrollment codes before enrollment locks for the person
    requests_per_minute = 10             # Start/Enroll calls per client address and minute

    [approval]
    four_eyes = true                     # the approving operator must not be the one who registered

    [envelopes]
    max_document_bytes = 16777216        # each document of an envelope (16 MiB); the API listener's gRPC
                                         # message limit is this plus 2 MiB
    default_expiry_days = 30             # a sent envelope expires after this many days unless the request
                                         # says otherwise (1 to 365)
    scheduler_seconds = 5                # expiry and reminder passes; how often the notice dispatcher and
                                         # event watchers poll the store (they are also woken at each change)
    notice_max_attempts = 8              # hand-offs of one notice before it is recorded as failed
    notice_retry_seconds = 30            # wait after a failed hand-off, doubling each time ...
    notice_retry_max_seconds = 3600      # ... up to this
    max_watches = 0                      # WatchEnvelopeEvents streams at once (each holds a gRPC worker);
                                         # 0: half of grpc.workers, rounded down; below grpc.workers
    signature_timestamps = true          # PDF signatures are PAdES B-T with this server's TSA (StartSigning
                                         # gives a token signer its URL; remote signatures use it), so the
                                         # platform seal makes every signature B-LTA

    [notify]
    default = "outbox"                   # outbox | smtp | webhook
    phone = ""                           # channel for phone numbers; default: default
    email = ""                           # channel for e-mail addresses; default: default
    [notify.smtp]                        # host, port, sender, security, username, password_env, cafile
    [notify.webhook]                     # url, secret_env, cafile, allow_http

The policy OIDs sit under a placeholder enterprise arc (1.3.6.1.4.1.59541): a deployment sets its own,
registered arc **before** `signet-server init`, which writes them into the signing root and CA
certificates (verifiers read the required policies from the root).
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from formats.policy import DEFAULT_REMOTE_POLICY, DEFAULT_SEAL_POLICY, DEFAULT_SIGNING_POLICY, DEFAULT_TSA_POLICY
from signet.secrets import SecretUnavailable, read_env_secret, read_file_secret
from signet.tomlconf import ConfigProblems, Problems, Table, load_toml

from .errors import InvalidArgument
from .notify.smtp import SmtpConfig
from .webhooks import WebhookTarget


class ConfigError(ConfigProblems, InvalidArgument):
    """The configuration file is missing, malformed or inconsistent; the message names every key at fault."""

    reason = "CONFIG_INVALID"


class Mode(enum.Enum):
    PRODUCTION = "production"
    DEMO = "demo"


class KeyFamily(enum.Enum):
    RSA = "rsa"
    EC = "ec"


class SerialPolicyName(enum.Enum):
    DOCUMENT = "document"
    PSEUDONYM = "pseudonym"


class ChannelName(enum.Enum):
    OUTBOX = "outbox"
    SMTP = "smtp"
    WEBHOOK = "webhook"


class SecretsSource(enum.Enum):
    HSM = "hsm"
    FILE = "file"


_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _address(t: Table, key: str, default: str) -> str:
    value = t.text(key, default)
    m = _ADDRESS.match(value)
    if not m or not 0 <= int(m.group(2)) <= 65535:
        t.problems.add(f"{t.name(key)} must be HOST:PORT, got {value!r}")
        return default
    return value


def _oid(t: Table, key: str, default: str) -> str:
    value = t.text(key, default)
    if not _OID.match(value):
        t.problems.add(f"{t.name(key)} must be a dotted OID such as {default}, got {value!r}")
        return default
    return value


def _secret(t: Table, env_key: str, file_key: str | None, what: str, base: Path, *, required: bool,
            default_env: str | None = None) -> str | None:
    env = t.text(env_key) or (default_env if not (file_key and t.text(file_key)) else "")
    file = t.text(file_key) if file_key else ""
    if env and file:
        t.problems.add(f"[{t.where}] give {env_key} or {file_key}, not both")
        return None
    try:
        if env:
            return read_env_secret(env, what)
        if file:
            return read_file_secret(base / file, what)
    except SecretUnavailable as e:
        t.problems.add(f"[{t.where}] {e}")
        return None
    if required:
        t.problems.add(f"[{t.where}] needs {env_key}" + (f" or {file_key}" if file_key else ""))
    return None


@dataclass(frozen=True)
class ServerSettings:
    state_dir: Path
    store_url: str
    organisation: str = "Signet"
    country: str | None = None
    key_family: KeyFamily = KeyFamily.RSA
    log_level: str = "INFO"
    mode: Mode = Mode.PRODUCTION
    store_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_table(cls, t: Table, base: Path) -> ServerSettings:
        state_dir = (base / t.text("state_dir", "state")).resolve()
        store = t.text("store")
        if store and "://" in store and not store.startswith(("sqlite:///", "postgresql://", "postgres://")):
            t.problems.add("server.store must be sqlite:///PATH or postgresql://USER@HOST/DB")
        if store.startswith(("postgresql://", "postgres://")) and urlsplit(store).password is not None:
            t.problems.add("server.store must not hold a password: give store_password_env or store_password_file")
        password = _secret(t, "store_password_env", "store_password_file", "store password", base, required=False)
        organisation = t.text("organisation", "Signet")
        if not 0 < len(organisation) <= 40:
            t.problems.add("server.organisation must be 1 to 40 characters")
        country = t.text("country") or None
        if country is not None and not re.match(r"^[A-Z]{2}$", country):
            t.problems.add("server.country must be an ISO 3166 two-letter code such as CN")
        return cls(state_dir=state_dir, store_url=store or f"sqlite:///{state_dir / 'signet.sqlite'}",
                   store_password=password,
                   organisation=organisation, country=country,
                   key_family=t.enum("key_family", KeyFamily, KeyFamily.RSA),
                   log_level=t.text("log_level", "INFO", choices=_LEVELS).upper(),
                   mode=t.enum("mode", Mode, Mode.PRODUCTION))


@dataclass(frozen=True)
class HsmSettings:
    pin: str = field(repr=False)
    module: str | None = None
    token_label: str = "signet-server"  # noqa: S105 - a token's label, not a secret

    @classmethod
    def from_table(cls, t: Table, base: Path) -> HsmSettings:
        pin = _secret(t, "pin_env", "pin_file", "server token PIN", base, required=True,
                      default_env="SIGNET_SERVER_PIN")
        return cls(pin=pin or "", module=t.text("module") or None, token_label=t.text("token_label", "signet-server"))


@dataclass(frozen=True)
class GrpcSettings:
    listen: str = "127.0.0.1:7443"
    enroll_listen: str = "127.0.0.1:7444"
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    workers: int = 8

    @classmethod
    def from_table(cls, t: Table) -> GrpcSettings:
        names = t.strings("server_names", ("localhost", "127.0.0.1"))
        for n in names:
            if not _is_name(n):
                t.problems.add(f"grpc.server_names: {n!r} is neither a DNS name nor an IP address")
        if not names:
            t.problems.add("grpc.server_names must name at least one DNS name or IP address")
        return cls(listen=_address(t, "listen", "127.0.0.1:7443"),
                   enroll_listen=_address(t, "enroll_listen", "127.0.0.1:7444"), server_names=names,
                   workers=t.integer("workers", 8, minimum=1, maximum=256))


def _is_name(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(re.match(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}$",
                             name))


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:7080"
    base_url: str = "http://127.0.0.1:7080"
    max_connections: int = 64
    request_deadline_seconds: float = 10.0
    rate_per_minute: int = 600

    @classmethod
    def from_table(cls, t: Table) -> HttpSettings:
        listen = _address(t, "listen", "127.0.0.1:7080")
        base_url = t.text("base_url") or f"http://{listen}"
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", base_url) or base_url.endswith("/"):
            t.problems.add("http.base_url must be http(s)://host[:port][/path] without a trailing /")
        return cls(listen=listen, base_url=base_url,
                   max_connections=t.integer("max_connections", 64, minimum=1, maximum=4096),
                   request_deadline_seconds=t.number("request_deadline_seconds", 10.0, minimum=0.1, maximum=300),
                   rate_per_minute=t.integer("rate_per_minute", 600, minimum=0))


@dataclass(frozen=True)
class CscSettings:
    """The Cloud Signature Consortium API over remote-signing keys (:mod:`server.csc`); off without ``listen``."""

    listen: str = ""
    token_seconds: int = 3600
    sad_seconds: int = 300

    @classmethod
    def from_table(cls, t: Table) -> CscSettings:
        listen = t.text("listen", "")
        if listen:
            listen = _address(t, "listen", "127.0.0.1:7445")
        return cls(listen=listen, token_seconds=t.integer("token_seconds", 3600, minimum=60, maximum=86400),
                   sad_seconds=t.integer("sad_seconds", 300, minimum=30, maximum=600))


@dataclass(frozen=True)
class PortalSettings:
    """The recipients' portal (:mod:`server.portal`); off without ``listen``."""

    listen: str = ""
    base_url: str = ""  # what the links in notices start with; default https://<listen>
    link_days: int = 14
    bridge: str = "http://127.0.0.1:17380"  # the agents' local bridge: token signers' code forms post there
    posts_per_minute: int = 30

    @classmethod
    def from_table(cls, t: Table) -> PortalSettings:
        listen = t.text("listen", "")
        if listen:
            listen = _address(t, "listen", "127.0.0.1:7446")
        base_url = t.text("base_url") or (f"https://{listen}" if listen else "")
        if base_url and (not re.match(r"^https://[^\s/]+(/\S*)?$", base_url) or base_url.endswith("/")):
            t.problems.add("portal.base_url must be https://host[:port][/path] without a trailing /")
        bridge = t.text("bridge", cls.bridge)
        if bridge and not re.fullmatch(r"http://(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}", bridge):
            t.problems.add("portal.bridge must be http://127.0.0.1:PORT (the agents' loopback bridge) or \"\"")
        return cls(listen=listen, base_url=base_url, link_days=t.integer("link_days", 14, minimum=1, maximum=90),
                   bridge=bridge, posts_per_minute=t.integer("posts_per_minute", 30, minimum=1, maximum=10_000))


@dataclass(frozen=True)
class SecretsSettings:
    source: SecretsSource = SecretsSource.HSM
    hmac_key_file: Path | None = None
    box_key_file: Path | None = None

    @classmethod
    def from_table(cls, t: Table, base: Path) -> SecretsSettings:
        source = t.enum("source", SecretsSource, SecretsSource.HSM)
        hmac_file, box_file = t.path("hmac_key_file", base), t.path("box_key_file", base)
        if source is SecretsSource.FILE and (hmac_file is None or box_file is None):
            t.problems.add('secrets.source = "file" needs hmac_key_file and box_key_file')
        return cls(source, hmac_file, box_file)


@dataclass(frozen=True)
class CaSettings:
    validity_days: int = 730
    serial_policy: SerialPolicyName = SerialPolicyName.DOCUMENT
    client_validity_days: int = 365
    external_roots: tuple[Path, ...] = ()
    signing_policy_oid: str = DEFAULT_SIGNING_POLICY
    remote_policy_oid: str = DEFAULT_REMOTE_POLICY
    seal_policy_oid: str = DEFAULT_SEAL_POLICY
    document_signing_eku: bool = False

    @classmethod
    def from_table(cls, t: Table, base: Path) -> CaSettings:
        policies = (_oid(t, "signing_policy_oid", DEFAULT_SIGNING_POLICY),
                    _oid(t, "remote_policy_oid", DEFAULT_REMOTE_POLICY),
                    _oid(t, "seal_policy_oid", DEFAULT_SEAL_POLICY))
        if len(set(policies)) != len(policies):
            t.problems.add("ca.signing_policy_oid, remote_policy_oid and seal_policy_oid must differ")
        return cls(validity_days=t.integer("validity_days", 730, minimum=1, maximum=3650),
                   serial_policy=t.enum("serial_policy", SerialPolicyName, SerialPolicyName.DOCUMENT),
                   client_validity_days=t.integer("client_validity_days", 365, minimum=1, maximum=3650),
                   external_roots=t.paths("external_roots", base), signing_policy_oid=policies[0],
                   remote_policy_oid=policies[1], seal_policy_oid=policies[2],
                   document_signing_eku=t.flag("document_signing_eku", False))


@dataclass(frozen=True)
class TsaSettings:
    policy_oid: str = DEFAULT_TSA_POLICY
    accuracy_seconds: int = 1

    @classmethod
    def from_table(cls, t: Table) -> TsaSettings:
        return cls(policy_oid=_oid(t, "policy_oid", DEFAULT_TSA_POLICY),
                   accuracy_seconds=t.integer("accuracy_seconds", 1, minimum=1, maximum=60))


@dataclass(frozen=True)
class OtpSettings:
    ttl_seconds: int = 300
    min_interval_seconds: int = 60
    hourly_limit: int = 5

    @classmethod
    def from_table(cls, t: Table) -> OtpSettings:
        return cls(ttl_seconds=t.integer("ttl_seconds", 300, minimum=1, maximum=600),
                   min_interval_seconds=t.integer("min_interval_seconds", 60, minimum=0),
                   hourly_limit=t.integer("hourly_limit", 5, minimum=1))


@dataclass(frozen=True)
class EnrollmentSettings:
    max_failures_per_day: int = 5
    requests_per_minute: int = 10

    @classmethod
    def from_table(cls, t: Table) -> EnrollmentSettings:
        return cls(max_failures_per_day=t.integer("max_failures_per_day", 5, minimum=1, maximum=100),
                   requests_per_minute=t.integer("requests_per_minute", 10, minimum=1))


@dataclass(frozen=True)
class ApprovalSettings:
    four_eyes: bool = True

    @classmethod
    def from_table(cls, t: Table) -> ApprovalSettings:
        return cls(four_eyes=t.flag("four_eyes", True))


@dataclass(frozen=True)
class EnvelopeSettings:
    max_document_bytes: int = 16 * 1024 * 1024
    default_expiry_days: int = 30
    scheduler_seconds: float = 5.0
    notice_max_attempts: int = 8
    notice_retry_seconds: float = 30.0
    notice_retry_max_seconds: float = 3600.0
    max_watches: int = 0  # 0: half of grpc.workers (ServerConfig.parse fills it in)
    signature_timestamps: bool = True  # PDF signatures PAdES B-T with our TSA (what B-LTA for every one needs)

    KEYS = frozenset({"max_document_bytes", "default_expiry_days", "scheduler_seconds", "notice_max_attempts",
                      "notice_retry_seconds", "notice_retry_max_seconds", "max_watches", "signature_timestamps"})

    @classmethod
    def from_table(cls, t: Table) -> EnvelopeSettings:
        retry = t.number("notice_retry_seconds", 30.0, minimum=0.1, maximum=86400)
        retry_max = t.number("notice_retry_max_seconds", 3600.0, minimum=0.1, maximum=7 * 86400)
        if retry_max < retry:
            t.problems.add("envelopes.notice_retry_max_seconds must not be less than notice_retry_seconds")
        return cls(max_document_bytes=t.integer("max_document_bytes", 16 * 1024 * 1024, minimum=1024,
                                                maximum=256 * 1024 * 1024),
                   default_expiry_days=t.integer("default_expiry_days", 30, minimum=1, maximum=365),
                   scheduler_seconds=t.number("scheduler_seconds", 5.0, minimum=0.1, maximum=3600),
                   notice_max_attempts=t.integer("notice_max_attempts", 8, minimum=1, maximum=100),
                   notice_retry_seconds=retry, notice_retry_max_seconds=retry_max,
                   max_watches=t.integer("max_watches", 0, minimum=0, maximum=1024),
                   signature_timestamps=t.flag("signature_timestamps", True))


@dataclass(frozen=True)
class NotifySettings:
    default: ChannelName = ChannelName.OUTBOX
    phone: ChannelName | None = None
    email: ChannelName | None = None
    smtp: SmtpConfig | None = None
    webhook: WebhookTarget | None = None

    @classmethod
    def from_table(cls, t: Table, base: Path) -> NotifySettings:
        default = t.enum("default", ChannelName, ChannelName.OUTBOX)
        phone = t.enum("phone", ChannelName, default) if t.text("phone") else None
        email = t.enum("email", ChannelName, default) if t.text("email") else None
        smtp = webhook = None
        if t.has("smtp"):
            m = t.table("smtp", {"host", "port", "sender", "security", "username", "password_env", "cafile"})
            if not m.text("host"):
                t.problems.add("notify.smtp.host is required")
            try:
                smtp = SmtpConfig(m.text("host"), m.integer("port", 587, minimum=1, maximum=65535),
                                  m.text("sender", "signet@localhost"),
                                  m.text("security", "starttls", choices=("starttls", "tls", "none")),  # type: ignore[arg-type]  # checked by choices
                                  m.text("username") or None,
                                  _secret(m, "password_env", None, "SMTP password", base, required=False),
                                  cafile=m.text("cafile") or None)
            except InvalidArgument as e:
                t.problems.add(f"[notify.smtp] {e.message}")
        if t.has("webhook"):
            w = t.table("webhook", {"url", "secret_env", "cafile", "allow_http"})
            secret = _secret(w, "secret_env", None, "webhook secret", base, required=True)
            try:
                webhook = WebhookTarget(w.text("url"), (secret or "").encode(), allow_http=w.flag("allow_http", False),
                                        cafile=w.text("cafile") or None)
            except InvalidArgument as e:
                if secret is not None:
                    t.problems.add(f"[notify.webhook] {e.message}")
        used = {c for c in (default, phone, email) if c is not None}
        if (ChannelName.SMTP in used and smtp is None) or (ChannelName.WEBHOOK in used and webhook is None):
            t.problems.add("[notify] names a channel without its [notify.smtp] / [notify.webhook] table")
        return cls(default, phone, email, smtp, webhook)

    @property
    def phone_channel(self) -> ChannelName:
        return self.phone or self.default


_TABLES = {"server", "hsm", "grpc", "http", "csc", "portal", "secrets", "ca", "tsa", "otp", "enrollment", "approval",
           "envelopes", "notify"}


@dataclass(frozen=True)
class ServerConfig:
    path: Path
    server: ServerSettings
    hsm: HsmSettings
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    csc: CscSettings = field(default_factory=CscSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    ca: CaSettings = field(default_factory=CaSettings)
    tsa: TsaSettings = field(default_factory=TsaSettings)
    otp: OtpSettings = field(default_factory=OtpSettings)
    enrollment: EnrollmentSettings = field(default_factory=EnrollmentSettings)
    approval: ApprovalSettings = field(default_factory=ApprovalSettings)
    envelopes: EnvelopeSettings = field(default_factory=EnvelopeSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)

    # --- derived locations under state_dir ---
    @property
    def state_dir(self) -> Path:
        return self.server.state_dir

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def blobs_dir(self) -> Path:
        """Document revisions and detached signatures, content-addressed (:mod:`server.blobs`)."""
        return self.state_dir / "blobs"

    @property
    def archive_dir(self) -> Path:
        """Sealed contracts, certificates of completion and event logs, encrypted (:mod:`server.archive`)."""
        return self.state_dir / "archive"

    @property
    def pin_state_path(self) -> Path:
        return self.state_dir / "pin-failures.json"

    @classmethod
    def parse(cls, doc: dict[str, object], path: Path) -> ServerConfig:
        """Validate a parsed TOML document; every problem is reported at once (:class:`ConfigError`)."""
        problems = Problems(str(path))
        top = Table(doc, "", problems, _TABLES)
        base = path.parent

        def sub(name: str, known: set[str]) -> Table:
            return top.table(name, known)

        server = ServerSettings.from_table(sub("server", {"state_dir", "store", "store_password_env",
                                                          "store_password_file", "organisation", "country",
                                                          "key_family", "log_level", "mode"}), base)
        cfg = cls(
            path=path, server=server,
            hsm=HsmSettings.from_table(sub("hsm", {"module", "token_label", "pin_env", "pin_file"}), base),
            grpc=GrpcSettings.from_table(sub("grpc", {"listen", "enroll_listen", "server_names", "workers"})),
            http=HttpSettings.from_table(sub("http", {"listen", "base_url", "max_connections",
                                                      "request_deadline_seconds", "rate_per_minute"})),
            csc=CscSettings.from_table(sub("csc", {"listen", "token_seconds", "sad_seconds"})),
            portal=PortalSettings.from_table(sub("portal", {"listen", "base_url", "link_days", "bridge",
                                                                 "posts_per_minute"})),
            secrets=SecretsSettings.from_table(sub("secrets", {"source", "hmac_key_file", "box_key_file"}), base),
            ca=CaSettings.from_table(sub("ca", {"validity_days", "serial_policy", "client_validity_days",
                                                "external_roots", "signing_policy_oid", "remote_policy_oid",
                                                "seal_policy_oid", "document_signing_eku"}), base),
            tsa=TsaSettings.from_table(sub("tsa", {"policy_oid", "accuracy_seconds"})),
            otp=OtpSettings.from_table(sub("otp", {"ttl_seconds", "min_interval_seconds", "hourly_limit"})),
            enrollment=EnrollmentSettings.from_table(sub("enrollment", {"max_failures_per_day",
                                                                        "requests_per_minute"})),
            approval=ApprovalSettings.from_table(sub("approval", {"four_eyes"})),
            envelopes=EnvelopeSettings.from_table(sub("envelopes", set(EnvelopeSettings.KEYS))),
            notify=NotifySettings.from_table(sub("notify", {"default", "phone", "email", "smtp", "webhook"}), base),
        )
        watches = cfg.envelopes.max_watches or cfg.grpc.workers // 2
        if watches >= cfg.grpc.workers:
            problems.add(f"envelopes.max_watches ({watches}) must be less than grpc.workers ({cfg.grpc.workers}): "
                         "each watch holds a worker thread, and unary calls need some")
        cfg = replace(cfg, envelopes=replace(cfg.envelopes, max_watches=watches))
        if server.mode is Mode.PRODUCTION and cfg.notify.phone_channel is ChannelName.OUTBOX:
            problems.add('server.mode = "production" refuses the outbox as the only channel for one-time codes: '
                         'set [notify] phone (or default) to "smtp" or "webhook" (an SMS gateway), or set '
                         '[server] mode = "demo" for a demonstration or test installation')
        problems.raise_if_any(ConfigError)
        return cfg


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and check the TOML file; raises :class:`ConfigError` naming every offending key."""
    p = Path(path).resolve()
    return ServerConfig.parse(load_toml(p, ConfigError), p)
