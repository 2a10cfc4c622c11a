"""`signet enroll` end to end: the signer's own agent (a real process holding a real SoftHSM token) generates
the key, the server (a real process) certifies it after the one-time code, and the agent stores the
certificate next to the key.  A wrong code leaves no orphan key on the token."""

from __future__ import annotations

import base64
import json

import pytest
from asn1crypto import pem, x509

from .agent_harness import AgentProcess, cli
from .server_harness import channel, latest_code, openssl, prc_id, register_verified, start_running

DOC = prc_id("19850612", "318")
PHONE = "+8613900139001"


@pytest.fixture(scope="module")
def running(make_token, tmp_path_factory):
    tok = make_token("srv-cli")
    r = start_running(tmp_path_factory.mktemp("server-cli"), tok.label, tok.pin)
    yield r
    r.server.stop()


@pytest.fixture(scope="module")
def person(running):
    return register_verified(running, channel(running.env, running.op_a), "Wei Chen 陈伟", DOC, PHONE,
                             "wei@example.com")


@pytest.fixture
def agent(tmp_path):
    a = AgentProcess(tmp_path / "agent").start()
    yield a
    assert a.stop() == 0


def _enroll(running, agent, token, person, code, *extra, tls_dir=True, home=None, as_json=False):
    env = {"SIGNET_TEST_PIN": token.pin, "SIGNET_TEST_CODE": code, **({"HOME": str(home)} if home else {})}
    where = ["--tls-dir", str(agent.dir / "server-tls")] if tls_dir else []
    return cli(agent, *(["--json"] if as_json else []), "enroll", "--token", token.label, "--pin-env",
               "SIGNET_TEST_PIN", "--server", running.env.enroll,
               "--server-ca", str(running.env.ca_pem), "--person", person, "--code-env", "SIGNET_TEST_CODE",
               *where, *extra, env=env)


def _keys(agent, token):
    p = cli(agent, "--json", "keys", "--token", token.label, "--pin-env", "SIGNET_TEST_PIN",
            env={"SIGNET_TEST_PIN": token.pin})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout).get("keys", [])


def _send_code(running, agent, token, person):
    p = cli(agent, "--json", "enroll", "--token", token.label, "--server", running.env.enroll, "--server-ca",
            str(running.env.ca_pem), "--person", person, "--send-code")
    assert p.returncode == 0, p.stderr
    sent = json.loads(p.stdout)["code_sent"]
    assert sent["person_id"] == person and sent["channel"] == "outbox" and sent["code_id"]
    return latest_code(running.env, PHONE)


def test_signet_enroll_through_the_agent(running, person, agent, make_token, tmp_path):
    token = make_token("wei")
    code = _send_code(running, agent, token, person)
    home = tmp_path / "home"
    home.mkdir()
    p = _enroll(running, agent, token, person, code, "--key-label", "wei-signing", tls_dir=False, home=home)
    assert p.returncode == 0, p.stderr
    # the agent's TLS material and the server's roots are kept with the agent's state, never in $HOME
    tls = agent.state / "server"
    assert list(home.iterdir()) == [] and str(tls) in p.stdout
    assert oct((tls / "agent.key").stat().st_mode & 0o777) == "0o600"
    assert (tls / "signing-root.pem").read_bytes() == running.env.signing_root.read_bytes()
    assert (tls / "ca.pem").read_bytes() == running.env.ca_pem.read_bytes()
    assert "enrolled key" in p.stdout and "Wei Chen" in p.stdout
    assert code not in p.stdout + p.stderr + agent.log()

    keys = _keys(agent, token)
    [key] = [k for k in keys if k["label"] == "wei-signing"]
    assert "Wei Chen" in key["certificate_subject"] and f"IDCCN-{DOC}" in key["certificate_subject"]

    # the certificate on the token chains to the server's root (openssl as the judge)
    from signet.v1 import agent_pb2

    [on_token] = [k for k in agent.stub().ListKeys(agent_pb2.ListKeysRequest(
        token=agent_pb2.TokenSelector(label=token.label), credential=agent_pb2.PinCredential(pin=token.pin))).keys
        if k.label == "wei-signing"]
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem.armor("CERTIFICATE", on_token.certificate_der))
    import urllib.request

    with urllib.request.urlopen(f"{running.env.pki_url}/ca/signing-ca.crt", timeout=30) as resp:
        issuing = tmp_path / "signing-ca.pem"
        issuing.write_bytes(pem.armor("CERTIFICATE", resp.read()))
    out = openssl("verify", "-CAfile", str(running.env.signing_root), "-untrusted", str(issuing), str(leaf))
    assert f"{leaf}: OK" in out.stdout
    # ... and never to the TLS root the agent's TLS certificate chains to
    out = openssl("verify", "-CAfile", str(running.env.ca_pem), "-untrusted", str(issuing), str(leaf), check=False)
    assert out.returncode != 0
    cert = x509.Certificate.load(on_token.certificate_der)
    assert cert.public_key.dump() == on_token.public_key_der == base64.b64decode(key["public_key_der"])
    journal = [r["operation"] for r in agent.journal()]
    assert {"generate_key", "create_csr", "import_certificate"} <= set(journal)


def test_wrong_code_is_refused_and_the_new_key_is_removed(running, person, agent, make_token):
    token = make_token("wei-bad")
    real = _send_code(running, agent, token, person)
    assert len(real) == 8  # enrollment codes have 8 digits
    wrong = f"{(int(real) + 1) % 10**8:08d}"
    p = _enroll(running, agent, token, person, wrong, "--key-label", "wei-refused", as_json=True)
    assert p.returncode == 1
    assert "OTP_INCORRECT" in p.stderr
    answer = json.loads(p.stdout)
    assert (answer["status"], answer["reason"], answer["exit"]) == ("UNAUTHENTICATED", "OTP_INCORRECT", 1)
    assert [k for k in _keys(agent, token) if k["label"] == "wei-refused"] == []
    assert "delete_key" in [r["operation"] for r in agent.journal()]


def test_enroll_without_code_and_without_terminal_explains_what_to_do(running, person, agent, make_token):
    token = make_token("wei-tty")
    r = cli(agent, "enroll", "--token", token.label, "--server", running.env.enroll, "--server-ca",
            str(running.env.ca_pem), "--person", person, stdin="")
    assert r.returncode != 0
    assert "--code-env" in r.stderr
