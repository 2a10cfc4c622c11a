"""Agent configuration: validation at load names the bad setting; secrets stay out of repr."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig, default_socket_path, load
from agent.errors import ConfigError


def _load(tmp_path, text):
    p = tmp_path / "agent.toml"
    p.write_text(text)
    return load(p)


def test_defaults_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    cfg = _load(tmp_path, '[agent]\nstate_dir = "st"\n')
    assert cfg.state_dir == tmp_path / "st"
    assert cfg.socket == tmp_path / "signet" / "agent.sock"
    assert cfg.tls is None and cfg.default_callers == ("local",)
    with pytest.raises(AttributeError):
        cfg.workers = 3  # type: ignore[misc]  # frozen


def test_socket_fallback_without_xdg_runtime_dir(monkeypatch):
    import os

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert str(default_socket_path()) == f"/tmp/signet-{os.getuid()}/agent.sock"


@pytest.mark.parametrize("text, words", [
    ("[agent]\nworkers = 0\n", "agent.workers"),
    ("[agent]\nworkers = \"8\"\n", "agent.workers"),
    ("[agent]\nbogus = 1\n", "bogus"),
    ("[nonsense]\n", "nonsense"),
    ("[unlock]\nmax_seconds = -1\n", "unlock.max_seconds"),
    ("[tcp]\nlisten = \"127.0.0.1:1\"\n", "mutual TLS"),
    ("[[policy.key]]\ncallers = [\"local\"]\n", "key_id or label"),
    ("[[policy.key]]\nkey_id = \"zz\"\ncallers = [\"local\"]\n", "hex"),
    ("[[policy.key]]\nlabel = \"k\"\ncallers = [\"local\"]\nusage_limit = 0\n", "usage_limit"),
    ("[agent]\nchunk_bytes = 4194304\n", "chunk_bytes"),
    ("[agent]\nmax_inline_bytes = 4194304\n", "agent.max_inline_bytes"),
    ("[agent]\nmax_inline_bytes = -1\n", "agent.max_inline_bytes"),
    ("not toml = = =", "not valid TOML"),
])
def test_invalid_settings_are_named(tmp_path, text, words):
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, text)
    assert words in str(ei.value)


def test_inline_limit_defaults_to_at_most_a_chunk_and_a_document(tmp_path):
    assert _load(tmp_path, "").max_inline_bytes == 1024 * 1024
    assert _load(tmp_path, "[agent]\nchunk_bytes = 65536\n").max_inline_bytes == 65536
    assert _load(tmp_path, "[agent]\nmax_document_bytes = 1000\n").max_inline_bytes == 1000
    assert _load(tmp_path, "[agent]\nmax_inline_bytes = 0\n").max_inline_bytes == 0  # inline transfers off
    assert _load(tmp_path, "[agent]\nmax_inline_bytes = 2097152\n").max_inline_bytes == 2 * 1024 * 1024


def test_tls_password_is_not_in_repr(tmp_path):
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    cfg = _load(tmp_path, '[tcp]\nlisten = "127.0.0.1:7443"\ncertificate = "c.pem"\nprivate_key = "k.pem"\n'
                          'client_ca = "ca.pem"\nprivate_key_password = "hunter2-secret"\n')
    assert cfg.tls is not None and cfg.tls.private_key_password == "hunter2-secret"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)


def test_key_rules_are_normalised(tmp_path):
    cfg = _load(tmp_path, '[[policy.key]]\nkey_id = "ABCD"\ncallers = ["tls:kiosk"]\nusage_limit = 3\n')
    (rule,) = cfg.keys
    assert rule.key_id == "abcd" and rule.usage_limit == 3 and rule.counter_name == "id:abcd"
    assert isinstance(cfg, AgentConfig)
