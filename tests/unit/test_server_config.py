"""signet-server configuration: defaults, every table's checks, secrets from env/file only, every problem at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.config import (
    ChannelName,
    ConfigError,
    KeyFamily,
    Mode,
    SecretsSource,
    SerialPolicyName,
    ServerConfig,
    load_config,
)

PIN = "4242-server-pin"


@pytest.fixture(autouse=True)
def pin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNET_SERVER_PIN", PIN)


def parse(doc: dict[str, object], base: Path = Path("/etc/signet")) -> ServerConfig:
    return ServerConfig.parse(doc, base / "server.toml")


def demo(**tables: dict[str, object]) -> dict[str, object]:
    doc: dict[str, object] = {name: dict(table) for name, table in tables.items()}
    doc["server"] = {"mode": "demo", **tables.get("server", {})}
    return doc


def problems(doc: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        parse(doc)
    return list(ei.value.problems)


def test_defaults_of_a_demo_configuration() -> None:
    cfg = parse(demo())
    assert cfg.server.state_dir == Path("/etc/signet/state")
    assert cfg.server.store_url == "sqlite:////etc/signet/state/signet.sqlite"
    assert (cfg.server.key_family, cfg.server.mode) == (KeyFamily.RSA, Mode.DEMO)
    assert cfg.hsm.pin == PIN and cfg.hsm.token_label == "signet-server"
    assert cfg.grpc.listen == "127.0.0.1:7443" and cfg.http.base_url == "http://127.0.0.1:7080"
    assert cfg.secrets.source is SecretsSource.HSM
    assert cfg.ca.serial_policy is SerialPolicyName.DOCUMENT
    assert cfg.notify.phone_channel is ChannelName.OUTBOX
    assert cfg.approval.four_eyes is True
    assert cfg.enrollment.max_failures_per_day == 5


def test_the_pin_never_appears_in_repr() -> None:
    cfg = parse(demo())
    assert PIN not in repr(cfg) and PIN not in repr(cfg.hsm)


def test_production_refuses_the_outbox_as_the_code_channel() -> None:
    found = problems({})
    assert any("production" in p and "outbox" in p for p in found)


def test_every_problem_is_reported_at_once_naming_its_key() -> None:
    found = problems(demo(server={"key_family": "dsa", "country": "China", "surprise": 1},
                          grpc={"listen": "nowhere", "server_names": ["bad name!"]},
                          http={"base_url": "ftp://x/"}, ca={"validity_days": 0},
                          tsa={"policy_oid": "not-an-oid"}, otp={"ttl_seconds": 3600}))
    text = "\n".join(found)
    for needle in ("key_family", "server.country", "surprise", "grpc.listen", "grpc.server_names",
                   "http.base_url", "validity_days", "tsa.policy_oid", "ttl_seconds"):
        assert needle in text, (needle, found)
    assert len(found) >= 9


def test_unknown_tables_are_refused() -> None:
    assert any("grcp" in p for p in problems(demo(grcp={"listen": "127.0.0.1:1"})))


def test_policy_oids_must_differ_and_be_dotted() -> None:
    same = problems(demo(ca={"signing_policy_oid": "1.2.3", "remote_policy_oid": "1.2.3"}))
    assert any("must differ" in p for p in same)
    cfg = parse(demo(ca={"signing_policy_oid": "1.2.3.4", "remote_policy_oid": "1.2.3.5",
                         "seal_policy_oid": "1.2.3.6"}))
    assert (cfg.ca.signing_policy_oid, cfg.ca.seal_policy_oid) == ("1.2.3.4", "1.2.3.6")


def test_pin_from_env_or_file_not_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file\n")
    pin_file.chmod(0o600)
    cfg = parse(demo(hsm={"pin_file": "pin"}), tmp_path)
    assert cfg.hsm.pin == "from-file"
    both = problems(demo(hsm={"pin_file": str(pin_file), "pin_env": "SIGNET_SERVER_PIN"}))
    assert any("not both" in p for p in both)
    monkeypatch.delenv("SIGNET_SERVER_PIN")
    assert any("SIGNET_SERVER_PIN is not set" in p for p in problems(demo()))


def test_a_pin_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("x\n")
    pin_file.chmod(0o644)
    with pytest.raises(ConfigError) as ei:
        parse(demo(hsm={"pin_file": "pin"}), tmp_path)
    assert "x\n" not in str(ei.value)
    assert any("pin" in p.lower() for p in ei.value.problems)


def test_file_secrets_need_both_key_files() -> None:
    assert any("hmac_key_file and box_key_file" in p for p in problems(demo(secrets={"source": "file"})))


def test_a_channel_without_its_table_is_refused() -> None:
    assert any("without its" in p for p in problems(demo(notify={"phone": "smtp"})))


def test_smtp_table_is_read_and_production_accepts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PW", "mail-secret")
    cfg = parse({"notify": {"default": "smtp", "smtp": {"host": "mail.example", "port": 2525,
                                                        "password_env": "SMTP_PW"}}})
    assert cfg.server.mode is Mode.PRODUCTION and cfg.notify.phone_channel is ChannelName.SMTP
    assert cfg.notify.smtp is not None and cfg.notify.smtp.port == 2525
    assert "mail-secret" not in repr(cfg)


def test_load_config_names_the_file_and_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "server.toml"
    bad.write_text("[server\nmode = 'demo'\n")
    with pytest.raises(ConfigError) as ei:
        load_config(bad)
    assert str(bad) in str(ei.value)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")


def test_load_config_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    f = tmp_path / "conf" / "server.toml"
    f.parent.mkdir()
    f.write_text('[server]\nmode = "demo"\nstate_dir = "../var"\n[ca]\nexternal_roots = ["roots/a.pem"]\n')
    cfg = load_config(f)
    assert cfg.server.state_dir == (tmp_path / "var").resolve()
    assert cfg.ca.external_roots == (f.parent / "roots" / "a.pem",)
    assert os.path.isabs(cfg.path)


def test_envelopes_table_defaults_and_bounds() -> None:
    cfg = parse(demo())
    assert (cfg.envelopes.max_document_bytes, cfg.envelopes.default_expiry_days) == (16 * 1024 * 1024, 30)
    assert cfg.blobs_dir == Path("/etc/signet/state/blobs")
    cfg = parse(demo(envelopes={"max_document_bytes": 1 << 20, "default_expiry_days": 7}))
    assert (cfg.envelopes.max_document_bytes, cfg.envelopes.default_expiry_days) == (1 << 20, 7)
    found = problems(demo(envelopes={"max_document_bytes": 10, "default_expiry_days": 366, "bulk": True}))
    assert any("envelopes.max_document_bytes" in p for p in found)
    assert any("envelopes.default_expiry_days" in p for p in found)
    assert any("bulk" in p for p in found)


def test_envelope_scheduler_notice_and_watch_settings() -> None:
    cfg = parse(demo())
    e = cfg.envelopes
    assert (e.scheduler_seconds, e.notice_max_attempts, e.notice_retry_seconds, e.notice_retry_max_seconds) == (
        5.0, 8, 30.0, 3600.0)
    assert e.max_watches == cfg.grpc.workers // 2 == 4  # half the API workers unless set
    cfg = parse(demo(envelopes={"scheduler_seconds": 0.5, "notice_max_attempts": 3, "notice_retry_seconds": 2,
                                "notice_retry_max_seconds": 60, "max_watches": 2}, grpc={"workers": 3}))
    e = cfg.envelopes
    assert (e.scheduler_seconds, e.notice_max_attempts, e.notice_retry_seconds, e.notice_retry_max_seconds,
            e.max_watches) == (0.5, 3, 2.0, 60.0, 2)
    assert parse(demo(grpc={"workers": 1})).envelopes.max_watches == 0  # no worker to spare: no watches
    found = problems(demo(envelopes={"scheduler_seconds": 0, "notice_max_attempts": 0, "notice_retry_seconds": 90,
                                     "notice_retry_max_seconds": 60, "max_watches": 8}, grpc={"workers": 8}))
    text = "\n".join(found)
    for needle in ("envelopes.scheduler_seconds", "envelopes.notice_max_attempts",
                   "notice_retry_max_seconds must not be less", "envelopes.max_watches (8) must be less than"):
        assert needle in text, (needle, found)


def test_the_api_listener_admits_the_largest_document() -> None:
    from server.api.listeners import MAX_MESSAGE, api_message_limit
    from server.envelopes.service import REVISION_ALLOWANCE

    for size in (1024, 16 * 1024 * 1024, 256 * 1024 * 1024):  # a signed revision may grow by the allowance
        assert api_message_limit(size) >= max(MAX_MESSAGE, size + REVISION_ALLOWANCE + 64 * 1024)


def test_a_postgresql_store_takes_its_password_apart_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNET_STORE_PASSWORD", "s3cret-store-pw")
    cfg = parse(demo(server={"store": "postgresql://signet@db.internal:5432/signet",
                             "store_password_env": "SIGNET_STORE_PASSWORD"}))
    assert cfg.server.store_url == "postgresql://signet@db.internal:5432/signet"
    assert cfg.server.store_password == "s3cret-store-pw"
    assert "s3cret-store-pw" not in repr(cfg)
    found = problems(demo(server={"store": "postgresql://signet:pw@db.internal/signet"}))
    assert any("must not hold a password" in p for p in found) and not any(":pw@" in p for p in found)
    assert any("sqlite:///" in p for p in problems(demo(server={"store": "mysql://db/x"})))
