"""`signet-server init` on a real SoftHSM token: what it creates, idempotence, refusals, and secret hygiene."""

from __future__ import annotations

import hashlib
import os
import stat

from .server_harness import ServerProcess, cli, openssl, server_init, write_config


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(state):
    return {str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state.rglob("*")) if p.is_file() and p.suffix != ".sqlite" and "sqlite" not in p.name}


def test_init_creates_keys_and_tls_then_is_idempotent(make_token, tmp_path):
    tok = make_token("srv-init")
    env = write_config(tmp_path / "a", tok.label, tok.pin)
    first = server_init(env)
    assert first.returncode == 0, first.stderr
    for label in ("signet-signing-root", "signet-signing-ca", "signet-tls-root", "signet-tls-ca", "signet-ocsp",
                  "signet-tsa", "signet-seal", "signet-audit", "signet-archive-kek", "hmac.wrapped.json",
                  "box.wrapped.json", "server.key", "server.crt", "ca.pem", "signing-root.pem"):
        assert label in first.stdout.split("created:")[1], label
    tls = env.state / "tls"
    assert _mode(env.state) == 0o700 and _mode(tls) == 0o700
    assert _mode(tls / "server.key") == 0o600
    assert _mode(env.state / "keys" / "hmac.wrapped.json") == 0o600
    assert _mode(env.state / "keys" / "box.wrapped.json") == 0o600
    # the listener certificate chains to the TLS root, is for TLS servers, and names 127.0.0.1 ...
    out = openssl("verify", "-CAfile", str(tls / "ca.pem"), "-untrusted", str(tls / "server.crt"),
                  "-purpose", "sslserver", str(tls / "server.crt"))
    assert ": OK" in out.stdout
    # ... and never to the signing root
    out = openssl("verify", "-CAfile", str(env.state / "signing-root.pem"), "-untrusted", str(tls / "server.crt"),
                  str(tls / "server.crt"), check=False)
    assert out.returncode != 0
    text = openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-text").stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text and "TLS Web Server Authentication" in text

    before = _snapshot(env.state)
    second = server_init(env)
    assert second.returncode == 0, second.stderr
    assert "created: nothing (already initialised)" in second.stdout
    assert _snapshot(env.state) == before  # no file rewritten, no key replaced


def test_init_refuses_a_token_that_belongs_to_another_store(make_token, tmp_path):
    tok = make_token("srv-two")
    one = write_config(tmp_path / "one", tok.label, tok.pin)
    assert server_init(one).returncode == 0
    other = write_config(tmp_path / "other", tok.label, tok.pin)  # same token, empty state
    p = server_init(other)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "refused" in p.stderr and "does not know" in p.stderr
    assert not (other.state / "tls").exists() and not (other.state / "keys").exists()


def test_init_refuses_to_replace_mismatched_tls_material(make_token, tmp_path):
    tok = make_token("srv-tls")
    env = write_config(tmp_path / "a", tok.label, tok.pin)
    assert server_init(env).returncode == 0
    crt = env.state / "tls" / "server.crt"
    foreign = env.state / "tls" / "ca.pem"
    crt.write_bytes(foreign.read_bytes())  # a certificate for another key
    p = server_init(env)
    assert p.returncode == 3 and "does not belong" in p.stderr
    assert crt.read_bytes() == foreign.read_bytes()
    (env.state / "tls" / "server.key").unlink()
    p = server_init(env)
    assert p.returncode == 3 and "only one of" in p.stderr


def test_run_before_init_and_wrong_pin_fail_without_leaking_the_pin(make_token, tmp_path):
    tok = make_token("srv-pin")
    env = write_config(tmp_path / "a", tok.label, tok.pin)
    p = cli(env, "server.main", "run", "--config", str(env.config))
    assert p.returncode == 3 and "signet-server init" in p.stderr
    wrong = write_config(tmp_path / "b", tok.label, "98765432")
    p = server_init(wrong)
    assert p.returncode == 1 and "98765432" not in p.stdout + p.stderr
    assert "PIN" in p.stderr or "pin" in p.stderr


def test_configuration_errors_name_the_key(make_token, tmp_path):
    tok = make_token("srv-cfg")
    env = write_config(tmp_path / "a", tok.label, tok.pin, extra="[ca]\nserial_polcy = \"document\"\n")
    p = server_init(env)
    assert p.returncode == 2 and "serial_polcy" in p.stderr
    env = write_config(tmp_path / "b", tok.label, tok.pin, extra="[otp]\n")  # duplicate table: invalid TOML
    p = server_init(env)
    assert p.returncode == 2 and "not valid TOML" in p.stderr
    env = write_config(tmp_path / "c", tok.label, tok.pin)
    p = cli(env, "server.main", "init", "--config", str(env.config))
    assert p.returncode == 0
    unset = {k: v for k, v in os.environ.items() if k != "SIGNET_TEST_SERVER_PIN"}
    import subprocess

    from .server_harness import PY, ROOT

    p = subprocess.run([PY, "-m", "server.main", "run", "--config", str(env.config)], capture_output=True, text=True,
                       env=unset, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and "SIGNET_TEST_SERVER_PIN" in p.stderr


def test_run_serves_and_stops_cleanly_on_sigterm(make_token, tmp_path):
    tok = make_token("srv-run")
    env = write_config(tmp_path / "a", tok.label, tok.pin)
    assert server_init(env).returncode == 0
    server = ServerProcess(env)
    assert f"api=127.0.0.1:{env.api_port}" in server.ready_line
    assert f"enroll=127.0.0.1:{env.enroll_port}" in server.ready_line
    server.stop()
    assert tok.pin not in server.log
