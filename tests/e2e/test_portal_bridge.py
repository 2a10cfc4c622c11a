"""Token signing from the browser through the agent's local bridge, against a real signet-server (portal on) and
Alice's real agent (bridge on, her SoftHSM token enrolled with `signet enroll`).

Erin sends Alice a contract; Alice opens the link of her notice, asks for a code, types it into the portal's form,
which posts to her agent's bridge on 127.0.0.1: the agent runs its confirmation program (which sees the document's
name, SHA-256 and the asking origin, and gives the PIN: the page never sees it), signs on her token, submits the
revision with the code and sends the browser back to the portal.  The final PDF verifies under the signing root.
Refusals change nothing: an origin not on the agent's allow-list, no origin, a Host that is not the loopback
listener, a replayed nonce, a return address elsewhere, a revision that is not the current one, a declined
confirmation.  Then the same in Debian's chromium, keyboard only."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem

from formats import verify_pdf
from formats.samplepdf import make_contract_pdf
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg

from . import browser
from .agent_harness import AgentProcess, cli
from .server_harness import (
    ClientFiles,
    Running,
    admin,
    channel,
    free_port,
    latest_code,
    notice_link,
    prc_id,
    register_verified,
    start_running,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE = ("Alice Bridge", prc_id("19900202", "118"), "+8613700137031")
ERIN = ("Erin Bridge", prc_id("19820303", "226"), "+8613700137032")
FIELD = pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)
CONFIRM = """#!/bin/sh
# the agent's confirmation program in this test: keep what it was shown, decline when told to, else give the PIN
cat > "$1"
[ -e "$3" ] && exit 1
cat "$2"
"""
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal-bridge"


@dataclass
class World:
    r: Running
    base: Path
    alice: str
    erin: ClientFiles
    agent: AgentProcess
    portal: str
    bridge: str
    shown: Path  # what the confirmation program was given, last time
    decline: Path  # exists: the confirmation program declines
    pin: str


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("portal-bridge")
    srv = make_token("bridge-srv")
    port, bridge_port = free_port(), free_port()
    portal, bridge = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{bridge_port}"
    r = start_running(base / "server", srv.label, srv.pin,
                      extra=f'\n[portal]\nlisten = "127.0.0.1:{port}"\nbridge = "{bridge}"\n')
    agent = None
    try:
        with channel(r.env, r.op_a) as op:
            alice = register_verified(r, op, *ALICE, "alice.bridge@example.com")
            erin = register_verified(r, op, *ERIN, "erin.bridge@example.com")
        admin(r.env, "remote-key", "create", erin, "--evidence", "ID card seen", "--out", str(base / "erin"))
        erin_files = ClientFiles(base / "erin" / "client.crt", base / "erin" / "client.key", base / "erin" / "ca.pem")
        tok = make_token("alice-bridge")
        program = base / "confirm.sh"
        program.write_text(CONFIRM)
        program.chmod(0o700)
        pin_file = base / "pin"
        pin_file.write_text(tok.pin + "\n")
        shown, decline = base / "shown.json", base / "decline"
        agent = AgentProcess(base / "agent-alice", agent_settings=f'timestamp_urls = ["{r.env.pki_url}/tsa"]',
                             extra_toml=f'[bridge]\nlisten = "127.0.0.1:{bridge_port}"\n'
                                        f'allowed_origins = ["{portal}"]\n'
                                        f'confirm = "{program} {shown} {pin_file} {decline}"\n').start()
        common = ["--token", tok.label, "--server", r.env.enroll, "--server-ca", str(r.env.ca_pem), "--person",
                  alice, "--api", r.env.api]
        sent = cli(agent, "enroll", *common, "--send-code")
        assert sent.returncode == 0, sent.stderr
        p = cli(agent, "enroll", *common, "--pin-env", "PIN", "--code-env", "CODE",
                env={"PIN": tok.pin, "CODE": latest_code(r.env, ALICE[2])})
        assert p.returncode == 0, p.stderr
        yield World(r, base, alice, erin_files, agent, portal, bridge, shown, decline, tok.pin)
    finally:
        if agent is not None:
            agent.stop()
        assert r.server.stop() == 0
    logs = r.server.log + (agent.log() if agent else "")
    assert tok.pin not in logs
    assert not re.search(r"/r/[A-Za-z0-9_-]{30,}", logs)  # a link's token is never logged


def _send(w: World, title: str, form_fields: tuple[pb.FormFieldSpec, ...] = ()) -> pb.Envelope:
    path = w.base / f"{title.replace(' ', '-')}.pdf"
    make_contract_pdf(path, title, ["Erin Bridge", "Alice Bridge"], pages=2)
    with channel(w.r.env, w.erin) as ch:
        svc = pbg.EnvelopeServiceStub(ch)
        draft = svc.CreateEnvelope(pb.CreateEnvelopeRequest(
            idempotency_key=f"create {title}", title=title,
            recipients=[pb.RecipientSpec(person_id=w.alice, role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
                                         signing_method=pb.SIGNING_METHOD_TOKEN, field=FIELD,
                                         form_fields=list(form_fields))],
            documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=path.read_bytes())]),
            timeout=60)
        return svc.SendEnvelope(pb.SendEnvelopeRequest(envelope_id=draft.envelope.id), timeout=60).envelope


def _get(w: World, envelope_id: str) -> pb.Envelope:
    with channel(w.r.env, w.erin) as ch:
        return pbg.EnvelopeServiceStub(ch).GetEnvelope(pb.GetEnvelopeRequest(envelope_id=envelope_id),
                                                       timeout=60).envelope


def _link(w: World, envelope_id: str) -> str:
    return notice_link(w.r.env, "alice.bridge@example.com", envelope_id)


class Portal:
    """The portal over HTTPS as a browser without script: the session cookie, the CSRF token of each form."""

    def __init__(self, w: World, link: str) -> None:
        self.w = w
        self.link = urllib.parse.urlsplit(link)
        self.ctx = ssl.create_default_context(cafile=str(w.r.env.ca_pem))
        self.cookie = ""
        self.last_html = b""

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(self.link.hostname or "", self.link.port, context=self.ctx, timeout=60)
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        cookie = resp.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        data = resp.read()
        conn.close()
        return resp.status, data

    def code_form(self) -> tuple[str, dict[str, str], str]:
        """Open the envelope, ask for a code: (the form's action, its fields, the page's CSP)."""
        status, page = self.request("GET", self.link.path)
        assert status == 200, page[:300]
        fields = _fields(page, "/code")
        conn = http.client.HTTPSConnection(self.link.hostname or "", self.link.port, context=self.ctx, timeout=60)
        conn.request("POST", f"{self.link.path}/code", body=urllib.parse.urlencode(fields).encode(),
                     headers={"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        html, csp = resp.read(), resp.getheader("Content-Security-Policy") or ""
        conn.close()
        assert resp.status == 200, html[-300:]
        self.last_html = html
        m = re.search(rb'<form method="post" action="([^"]+/v1/sign)">(.*?)</form>', html, re.S)
        assert m, html[:600]
        form = {k.decode(): v.decode().replace("&amp;", "&") for k, v in
                re.findall(rb'<input type="hidden" name="([a-z0-9_]+)" value="([^"]*)"', m.group(2))}
        return m.group(1).decode(), form, csp


def _fields(page: bytes, action_suffix: str) -> dict[str, str]:
    m = re.search(rb'<form method="post" action="[^"]+' + re.escape(action_suffix.encode()) + rb'">(.*?)</form>',
                  page, re.S)
    assert m, page[:600]
    return {k.decode(): v.decode() for k, v in re.findall(rb'<input type="hidden" name="([a-z0-9_]+)" value="([^"]*)"',
                                                          m.group(1))}


def _bridge(w: World, form: dict[str, str], *, origin: str | None = "", host: str = "") -> tuple[int, str, str]:
    """POST the code form to the agent's bridge as the browser would: (status, Location, body)."""
    u = urllib.parse.urlsplit(w.bridge)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=120)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Host": host or u.netloc}
    if origin is not None:
        headers["Origin"] = origin or w.portal
    conn.request("POST", "/v1/sign", body=urllib.parse.urlencode(form).encode(), headers=headers)
    resp = conn.getresponse()
    out = resp.status, resp.getheader("Location") or "", resp.read().decode()
    conn.close()
    return out


def _signed(w: World, envelope_id: str) -> bool:
    return _get(w, envelope_id).recipients[0].state == pb.RECIPIENT_STATE_SIGNED


def test_the_portal_form_goes_to_the_agent_which_signs_on_the_token_after_its_own_confirmation(world: World) -> None:
    w = world
    env = _send(w, "Bridge Lease Amber", (pb.FormFieldSpec(
        name="tenant", kind=pb.FORM_FIELD_KIND_TEXT, page=1, x1=300, y1=56, x2=500, y2=80, required=True),))
    link = _link(w, env.id)
    portal = Portal(w, link)
    action, form, csp = portal.code_form()
    assert action == f"{w.bridge}/v1/sign"
    assert f"form-action 'self' {w.bridge}" in csp and "script-src" not in csp  # still no script at all
    assert "pin" not in {k.lower() for k in form}  # the page never asks for the PIN
    assert re.search(rb'name="field.tenant"[^>]*required', portal.last_html)  # her field, in the bridge's form
    doc = env.documents[0]
    assert form["sha256"] == doc.current_sha256 and form["return"] == f"{link}?signed=1"
    form["code"] = latest_code(w.r.env, ALICE[2])
    form["field.tenant"] = "Alice Bridge 爱丽"  # her form field, filled in the same form, signed by her agent

    # refused before anything happens: nothing signed, the code still good for the real request
    assert _bridge(w, form, origin="https://evil.example")[0] == 403
    assert _bridge(w, form, origin=None)[0] == 403
    assert _bridge(w, form, host="attacker.example:80")[0] == 403  # DNS rebinding: not our loopback Host
    assert _bridge(w, {**form, "return": "https://evil.example/x"})[0] == 400
    assert _bridge(w, {**form, "nonce": "n" * 24, "sha256": "0" * 64})[0] == 409  # not the current revision
    assert not _signed(w, env.id) and not w.shown.exists()  # the confirmation was never even asked

    status, location, body = _bridge(w, form)
    assert status == 303, body
    assert location == f"{link}?signed=1"
    shown = json.loads(w.shown.read_text())
    assert shown["file_name"] == "lease.pdf" and shown["sha256"] == doc.current_sha256
    assert shown["origin"] == w.portal and shown["pin_wanted"] is True and shown["operation"] == "sign_envelope"
    final = _get(w, env.id)
    assert final.recipients[0].state == pb.RECIPIENT_STATE_SIGNED and final.state == pb.ENVELOPE_STATE_COMPLETED
    assert _bridge(w, form)[0] == 409  # the same form again (reload, back button): never signs twice

    status, page = portal.request("GET", f"{portal.link.path}?signed=1")
    assert status == 200 and b"Signed" in page
    status, pdf = portal.request("GET", f"{portal.link.path}/doc/{doc.id}/file")
    assert status == 200
    signed = w.base / "signed-through-bridge.pdf"
    signed.write_bytes(pdf)
    report = verify_pdf(signed, [pem.unarmor(w.r.env.signing_root.read_bytes())[2]], revocation="offline")
    assert [s.ok for s in report.signatures] == [True]
    assert "Alice Bridge" in (report.signatures[0].signer_subject or "")
    from pyhanko.pdf_utils.reader import PdfFileReader

    with signed.open("rb") as f:
        fields = {str(x.get_object()["/T"]): x.get_object() for x in PdfFileReader(f).root["/AcroForm"]["/Fields"]}
        assert str(fields["tenant"]["/V"]) == "Alice Bridge 爱丽"


def test_a_declined_confirmation_signs_nothing_and_says_so(world: World) -> None:
    w = world
    env = _send(w, "Bridge Lease Birch")
    portal = Portal(w, _link(w, env.id))
    _, form, _ = portal.code_form()
    form["code"] = latest_code(w.r.env, ALICE[2])
    w.decline.touch()
    try:
        status, _, body = _bridge(w, form)
    finally:
        w.decline.unlink()
    assert status == 403 and "declined" in body and "nothing was signed" in body
    assert portal.link.path in body  # a way back to the portal
    assert not _signed(w, env.id)
    assert w.pin not in body


@pytest.fixture(scope="module")
def chromium(world: World) -> Iterator[Any]:
    with browser.chromium(world.r.env.state / "tls" / "server.crt") as b:
        yield b


def test_in_a_browser_the_recipient_signs_with_her_token_through_the_agent(world: World, chromium: Any) -> None:
    w = world
    env = _send(w, "Bridge Lease Cedar")
    link = _link(w, env.id)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx = chromium.new_context(viewport={"width": 1000, "height": 1400})
    page = ctx.new_page()
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith((w.portal, w.bridge)) else None)
    page.goto(link)
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Bridge Lease Cedar"
    browser.tab_to(page, "with my token")
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=code]")
    assert page.locator("input[type=password]").count() == 0  # no PIN field on the portal's pages
    browser.tab_to(page, "One-time code")
    page.keyboard.type(latest_code(w.r.env, ALICE[2]))
    page.screenshot(path=str(ARTIFACTS / "01-code.png"), full_page=True)
    browser.tab_to(page, "Sign with my token")
    page.keyboard.press("Enter")
    page.wait_for_selector("[role=status], [role=alert]", timeout=120_000)
    assert page.url.endswith("?signed=1"), page.content()
    assert "Signed" in page.locator("[role=status]").inner_text()
    page.screenshot(path=str(ARTIFACTS / "02-signed.png"), full_page=True)
    assert _signed(w, env.id)
    assert json.loads(w.shown.read_text())["sha256"] == env.documents[0].current_sha256
    assert elsewhere == []  # nothing but the portal and the person's own agent
    ctx.close()
