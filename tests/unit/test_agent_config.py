"""Agent configuration: every problem reported at once, each naming its setting and type; secrets out of repr."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig, Revocation, default_socket_path, load
from agent.errors import ConfigError


def _load(tmp_path, text, *, socket=True):
    """Load ``text``; settings before any table go into [agent], which also gets an explicit socket."""
    p = tmp_path / "agent.toml"
    head = f'socket = "{tmp_path}/run/agent.sock"\n' if socket else ""
    if text.startswith("[agent]\n"):
        text = text[len("[agent]\n"):]
    p.write_text("[agent]\n" + head + text)
    return load(p)


def test_defaults_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    p = tmp_path / "agent.toml"
    p.write_text('[agent]\nstate_dir = "st"\n')
    cfg = load(p)
    assert cfg.state_dir == tmp_path / "st"
    assert cfg.socket == tmp_path / "signet" / "agent.sock"
    assert cfg.tls is None and cfg.default_callers == ("local",)
    assert cfg.unlock.max_signatures == 1  # a grant covers one document unless configured otherwise
    assert cfg.verify.revocation == "online" and cfg.timestamp_urls == ()
    with pytest.raises(AttributeError):
        cfg.workers = 3  # type: ignore[misc]  # frozen


def test_no_runtime_dir_means_no_guessed_socket(tmp_path, monkeypatch):
    """Without $XDG_RUNTIME_DIR the agent does not fall back to /tmp on its own: agent.socket must say where."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_socket_path() is None
    with pytest.raises(ConfigError, match=r"agent\.socket is not set"):
        _load(tmp_path, "", socket=False)
    cfg = _load(tmp_path, "")  # an explicit path, anywhere (even /tmp) is the administrator's choice
    assert cfg.socket == tmp_path / "run" / "agent.sock"


@pytest.mark.parametrize("text, words", [
    ("[agent]\nworkers = 0\n", "agent.workers must be at least 1"),
    ("[agent]\nworkers = \"8\"\n", "agent.workers must be an integer, got '8'"),
    ("[agent]\nbogus = 1\n", "unknown setting(s) in [agent]: bogus"),
    ("[nonsense]\n", "nonsense"),
    ("[unlock]\nmax_seconds = -1\n", "unlock.max_seconds must be at least 1"),
    ("[unlock]\nallow_per_call_pin = 1\n", "unlock.allow_per_call_pin must be true or false"),
    ("[tcp]\nlisten = \"127.0.0.1:1\"\n", "mutual TLS"),
    ("[[policy.key]]\ncallers = [\"local\"]\n", "needs key_id or label"),
    ("[[policy.key]]\nkey_id = \"zz\"\ncallers = [\"local\"]\n", "must be hex"),
    ("[[policy.key]]\nlabel = \"k\"\ncallers = [\"local\"]\nusage_limit = 0\n", "usage_limit must be at least 1"),
    ("[[policy.key]]\nlabel = \"k\"\ncallers = [\"tls:kiosk-1\"]\n", "common names are not unique"),
    ("[[policy.key]]\nlabel = \"k\"\nconfirm = \"/no/such/program\"\n", "is not an executable file"),
    ("[policy]\nadmin_callers = [\"tls-sha256:1234\"]\n", "is not a caller"),
    ("[agent]\nchunk_bytes = 4194304\n", "chunk_bytes"),
    ("[agent]\nmax_inline_bytes = 4194304\n", "agent.max_inline_bytes"),
    ("[agent]\nmax_inline_bytes = -1\n", "agent.max_inline_bytes"),
    ("[agent]\ntimestamp_urls = [\"ftp://tsa\"]\n", "is not an http(s) URL"),
    ("[verify]\nrevocation = \"sometimes\"\n", "verify.revocation must be one of online, offline"),
    ("not toml = = =", "not valid TOML"),
])
def test_invalid_settings_are_named(tmp_path, text, words):
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, text)
    assert words in str(ei.value)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, 'workers = "many"\n[unlock]\nmax_signatures = 0\nbogus = true\n'
                        '[[policy.key]]\nkey_id = "xyz"\n')
    problems = ei.value.problems
    assert len(problems) == 4, problems
    assert any("agent.workers must be an integer" in p for p in problems)
    assert any("unlock.max_signatures must be at least 1" in p for p in problems)
    assert any("unknown setting(s) in [unlock]: bogus" in p for p in problems)
    assert any("policy.key[0].key_id must be hex" in p for p in problems)
    assert "4 problems in" in str(ei.value)


def test_inline_limit_defaults_to_at_most_a_chunk_and_a_document(tmp_path):
    assert _load(tmp_path, "").max_inline_bytes == 1024 * 1024
    assert _load(tmp_path, "chunk_bytes = 65536\n").max_inline_bytes == 65536
    assert _load(tmp_path, "max_document_bytes = 1000\n").max_inline_bytes == 1000
    assert _load(tmp_path, "max_inline_bytes = 0\n").max_inline_bytes == 0  # inline transfers off
    assert _load(tmp_path, "max_inline_bytes = 2097152\n").max_inline_bytes == 2 * 1024 * 1024


def test_tls_password_comes_from_the_environment_and_stays_out_of_repr(tmp_path, monkeypatch):
    for name in ("c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    _write_ca(tmp_path / "ca.pem")
    monkeypatch.setenv("TLS_KEY_PASSWORD", "hunter2-secret")
    cfg = _load(tmp_path, '[tcp]\nlisten = "127.0.0.1:7443"\ncertificate = "c.pem"\nprivate_key = "k.pem"\n'
                          'client_ca = "ca.pem"\nprivate_key_password_env = "TLS_KEY_PASSWORD"\n')
    assert cfg.tls is not None and cfg.tls.private_key_password == "hunter2-secret"
    assert cfg.tls.revocation is Revocation.REQUIRE
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)
    with pytest.raises(ConfigError, match="private_key_password"):  # never in the file itself
        _load(tmp_path, '[tcp]\nlisten = "127.0.0.1:7443"\ncertificate = "c.pem"\nprivate_key = "k.pem"\n'
                        'client_ca = "ca.pem"\nprivate_key_password = "hunter2-secret"\n')


def _write_ca(path):
    path.write_text("x")


def test_key_rules_are_normalised(tmp_path):
    cfg = _load(tmp_path, '[[policy.key]]\nkey_id = "ABCD"\ncallers = ["tls:urn:signet:org:o1:role:agent:subject:p1"]\n'
                          "usage_limit = 3\nallow_digests = true\n")
    (rule,) = cfg.keys
    assert rule.key_id == "abcd" and rule.usage_limit == 3 and rule.counter_name == "id:abcd"
    assert rule.allow_digests and rule.confirm is None
    assert isinstance(cfg, AgentConfig)


def test_confirmation_program_is_resolved_against_the_config_directory(tmp_path):
    prog = tmp_path / "confirm.sh"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    cfg = _load(tmp_path, '[[policy.key]]\nlabel = "k"\nconfirm = "confirm.sh --gui"\nconfirm_timeout_seconds = 5\n')
    (rule,) = cfg.keys
    assert rule.confirm is not None
    assert rule.confirm.program == (str(prog), "--gui") and rule.confirm.timeout_seconds == 5


def test_unlock_bounds_fit_the_api(tmp_path):
    """GetInfo and Unlock carry these in uint32 fields: a larger setting is refused at load, not at every call."""
    cfg = _load(tmp_path, f"[unlock]\nmax_signatures = {2**32 - 1}\nmax_seconds = {2**32 - 1}\n")
    assert cfg.unlock.max_signatures == 2**32 - 1
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, f"[unlock]\nmax_signatures = {2**32}\nmax_seconds = {2**40}\n")
    text = str(ei.value)
    assert "unlock.max_signatures" in text and "unlock.max_seconds" in text
