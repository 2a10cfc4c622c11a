"""Sole control through a real agent: the key's confirmation program sees what is about to be signed and says yes
or no; raw digests are refused for keys whose policy does not allow them; the CLI's defaults (the only token, its
only key) work and a missing choice is exit 2; the socket directory is checked without following symlinks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import grpc
import pytest

from formats.samplepdf import make_contract_pdf
from signet.v1 import agent_pb2
from signet.wire import reason_of
from tests.conftest import ROOT, SO_PIN, USER_PIN
from tests.e2e.agent_harness import AgentProcess, cli, provision_key
from tests.pki import make_ca

pytestmark = pytest.mark.e2e

CONFIRMER = """#!{python}
import json, sys, time
request = json.load(sys.stdin)
with open({log!r}, "a") as f:
    f.write(json.dumps(request) + "\\n")
answer = open({answer!r}).read().strip()
if answer == "slow":
    time.sleep(30)
sys.exit(0 if answer == "yes" else 1)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token):
    base = tmp_path_factory.mktemp("sole")
    answer, log = base / "answer", base / "confirm.log"
    answer.write_text("yes")
    script = base / "confirm.py"
    script.write_text(CONFIRMER.format(python=sys.executable, log=str(log), answer=str(answer)))
    script.chmod(0o755)
    tok = make_token("sole")
    policy = f"""
[[policy.key]]
label = "confirmed"
callers = ["local"]
confirm = "{script}"
confirm_timeout_seconds = 3
usage_limit = 50
"""
    agent = AgentProcess(base / "agent", policy).start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca(), key_label="confirmed")
    yield {"agent": agent, "tok": tok, "key": key, "base": base, "answer": answer, "log": log}
    assert agent.stop() == 0


def _sign(e, name="contract.pdf", env_pin=True):
    src = e["base"] / name
    if not src.exists():
        make_contract_pdf(src, "Confirmed contract", ["Alice Example", "Bob Example"], pages=3)
    out = e["base"] / f"signed-{name}"
    out.unlink(missing_ok=True)
    r = cli(e["agent"], "--json", "sign", str(src), "-o", str(out), "--token", e["tok"].label, "--key",
            e["key"].key_id, "--pin-env", "P", env={"P": e["tok"].pin})
    return r, src, out


def _confirmations(e):
    return [json.loads(line) for line in e["log"].read_text().splitlines()] if e["log"].exists() else []


def test_the_confirmer_sees_name_hash_pages_signer_and_caller_and_approves(env):
    env["answer"].write_text("yes")
    r, src, _out = _sign(env)
    assert r.returncode == 0, r.stderr
    shown = _confirmations(env)[-1]
    assert shown["operation"] == "sign_pdf" and shown["file_name"] == "contract.pdf"
    assert shown["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() and shown["size"] == src.stat().st_size
    assert shown["pages"] == 3 and "Alice Example" in shown["signer_subject"]
    assert shown["caller"] == "local" and shown["token"] == env["tok"].label and shown["key_id"] == env["key"].key_id
    assert env["tok"].pin not in env["log"].read_text()  # the program never sees a PIN
    row = [r for r in env["agent"].journal() if r["operation"] == "sign_pdf"][-1]
    assert row["outcome"] == "ok" and len(row["signed_digest"]) == 64  # the exact digest the token signed


@pytest.mark.parametrize("answer", ["no", "slow"])
def test_a_refusal_or_silence_is_user_declined_and_nothing_is_signed(env, answer):
    env["answer"].write_text(answer)
    before = len(_confirmations(env))
    r, _, out = _sign(env, f"{answer}.pdf")
    assert r.returncode == 6 and "USER_DECLINED" in r.stderr, r.stderr
    assert not out.exists() and len(_confirmations(env)) == before + 1
    row = [r for r in env["agent"].journal() if r["operation"] == "sign_pdf"][-1]
    assert row["outcome"] == "USER_DECLINED" and row["signed_digest"] == ""
    env["answer"].write_text("yes")


def test_raw_digests_are_refused_unless_the_key_allows_them(env):
    stub = env["agent"].stub()
    with pytest.raises(grpc.RpcError) as ei:
        stub.SignDigest(agent_pb2.SignDigestRequest(
            token=agent_pb2.TokenSelector(label=env["tok"].label), key_id=env["key"].key_id,
            digest=hashlib.sha256(b"anything").digest(), credential=agent_pb2.PinCredential(pin=env["tok"].pin)))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(ei.value) == "DIGESTS_NOT_ALLOWED"
    row = env["agent"].journal()[-1]
    assert (row["operation"], row["outcome"]) == ("sign_digest", "DIGESTS_NOT_ALLOWED")


def _private_softhsm(directory, *labels):
    """A SoftHSM token directory of its own (the session's shared one holds many tokens)."""
    conf = None
    for label in labels:
        p = subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(directory), label, SO_PIN, USER_PIN],
                           check=True, capture_output=True, text=True)
        conf = p.stdout.strip().removeprefix("export SOFTHSM2_CONF=")
    return conf


def test_sign_defaults_to_the_only_token_and_its_only_key_and_a_missing_choice_is_exit_2(tmp_path):
    conf = _private_softhsm(tmp_path / "softhsm", "only-token")
    agent = AgentProcess(tmp_path / "agent", env={"SOFTHSM2_CONF": conf}).start()
    try:
        provision_key(agent.stub(), "only-token", USER_PIN, make_ca(), key_label="first")
        src = tmp_path / "c.pdf"
        make_contract_pdf(src, "Defaults", ["Alice Example"])
        r = cli(agent, "--json", "sign", str(src), "--pin-env", "P", env={"P": USER_PIN})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["output"].endswith("c-signed.pdf")
        provision_key(agent.stub(), "only-token", USER_PIN, make_ca(), key_label="second")
        r = cli(agent, "sign", str(src), "--pin-env", "P", env={"P": USER_PIN})
        assert r.returncode == 2 and "2 keys with certificates" in r.stderr and "--key" in r.stderr
    finally:
        assert agent.stop() == 0


def test_cli_refuses_empty_files_fake_pdfs_and_missing_files(env):
    base = env["base"]
    empty = base / "empty.txt"
    empty.write_bytes(b"")
    fake = base / "fake.pdf"
    fake.write_bytes(b"not a pdf at all\n")
    for path, words in ((empty, "empty"), (fake, "--detached"), (base / "missing.pdf", "does not exist")):
        r = cli(env["agent"], "sign", str(path), "--token", env["tok"].label, "--key", env["key"].key_id)
        assert r.returncode == 9 and words in r.stderr, (path, r.stderr)
    r = cli(env["agent"], "verify", str(base / "missing.pdf"))
    assert r.returncode == 9 and "does not exist" in r.stderr


def test_a_socket_directory_that_is_a_symlink_is_refused_by_agent_and_client(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    agent = AgentProcess(tmp_path / "agent")
    agent.config.write_text(agent.config.read_text().replace(str(agent.socket), str(link / "agent.sock")))
    with pytest.raises(RuntimeError, match="symbolic link"):
        agent.start(timeout=60)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o755)  # noqa: S103 - the refusal under test
    r = subprocess.run([sys.executable, "-m", "agent.cli", "--socket", str(open_dir / "agent.sock"), "info"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 8 and "open to other users" in r.stderr
    r = subprocess.run([sys.executable, "-m", "agent.cli", "--socket", str(link / "agent.sock"), "info"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 8 and "symbolic link" in r.stderr
