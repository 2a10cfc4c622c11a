"""The agent's log: one line per event in one format, for Signet and for the libraries it uses (pyHanko on an
untrusted signature, a worker's failure), and an idle agent logs changes, not polls."""

from __future__ import annotations

import logging
import re
import time

import pytest

from formats.samplepdf import make_contract_pdf
from signet.logs import OneLineFormatter
from tests.e2e.agent_harness import AgentProcess, cli, provision_key
from tests.pki import make_ca

pytestmark = pytest.mark.e2e

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.\-]+: ")


def test_idle_agent_logs_no_polls_and_every_line_has_the_one_format(tmp_path, make_token):
    tok = make_token("logs")
    agent = AgentProcess(tmp_path / "agent", agent_settings="pdf_workers = 1").start()
    try:
        key = provision_key(agent.stub(), tok.label, tok.pin, make_ca(), key_label="logs")
        before = len(agent.log().splitlines())
        time.sleep(3.0)  # six token polls and reinitialisations at the harness's 0.5 s
        idle = agent.log().splitlines()[before:]
        assert idle == [], idle

        src = tmp_path / "c.pdf"
        make_contract_pdf(src, "Log contract", ["Alice Example"], pages=1)
        signed = tmp_path / "c-signed.pdf"
        assert cli(agent, "sign", str(src), "-o", str(signed), "--token", tok.label, "--key", key.key_id,
                   "--pin-env", "P", env={"P": tok.pin}).returncode == 0
        other = tmp_path / "other-root.pem"
        other.write_bytes(make_ca().root_pem)  # a root that did not issue the signer: pyHanko's untrusted path
        untrusted = cli(agent, "verify", "--offline", "--trust", str(other), str(signed))
        assert untrusted.returncode == 3, untrusted.stdout + untrusted.stderr
        bad = tmp_path / "bad.pdf"
        bad.write_bytes(src.read_bytes()[:200] + b"\x00garbage" * 50)
        assert cli(agent, "verify", "--offline", "--trust", str(other), str(bad)).returncode == 9
    finally:
        assert agent.stop() == 0
    lines = agent.log().splitlines()
    assert lines, "the agent logged nothing at all"
    strays = [line for line in lines if not LINE.match(line)]
    assert strays == [], strays  # no traceback lines, no other format, from the agent or its workers
    assert not any("reinitialised" in line for line in lines)
    assert tok.pin not in agent.log()


def test_an_exception_stays_on_its_line_below_debug():
    formatter = OneLineFormatter(keep_tracebacks=False)
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        import sys

        record = logging.LogRecord("pyhanko.sign", logging.WARNING, __file__, 1, "could not validate %s", ("x",),
                                   sys.exc_info())
    text = formatter.format(record)
    assert "\n" not in text
    assert text.endswith("could not validate x [ValueError: first line]")
    kept = OneLineFormatter(keep_tracebacks=True).format(record)  # DEBUG keeps the traceback, on one line
    assert "Traceback" in kept and "\n" not in kept
