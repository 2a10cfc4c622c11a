"""The portal's signed-in pages against a real `signet-server` (``[portal] listen``): senders under ``/s``, operators
under ``/o``, signed in with the TLS client certificates the server issued (``signet-admin remote-key create`` for
people, ``operator-cert issue`` for operators), driven over HTTPS like a browser without script would.

Dave creates an envelope from the form (one PDF, a recipient row), reaches its placement step
(tests/e2e/test_portal_placement.py drags the boxes there), sends it, follows it, downloads its document
and voids it; a double submit creates once.  A completed contract's evidence bundle comes from the sender's page
and the operator's, found by the blind-index search; another organisation's operator finds nothing.  An operator
approves and rejects pending identities.  Refusals change nothing: no certificate (401), a revoked one (401), a
member under /o and an operator under /s (403), a form without or with a wrong CSRF token (403).  Then the same in
Debian's chromium, keyboard only, axe-core on the pages."""

from __future__ import annotations

import http.cookiejar
import re
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from formats.samplepdf import make_contract_pdf
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg

from . import browser
from .authz_world import serial_of
from .server_harness import (
    ClientFiles,
    Running,
    admin,
    channel,
    free_port,
    latest_code,
    prc_id,
    register_verified,
    start_running,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PEOPLE = {"dave": ("19790101", "471", "+8613700137031"), "carol": ("19850615", "232", "+8613700137032"),
          "erin": ("19900202", "343", "+8613700137033")}
UTC_MS = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC")
FIELD = pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)


@dataclass
class World:
    r: Running
    base: Path
    ids: dict[str, str]
    files: dict[str, ClientFiles]
    portal: str

    def call(self, who: str, method: str, request: Any) -> Any:
        with channel(self.r.env, self.files[who]) as ch:
            return getattr(pbg.EnvelopeServiceStub(ch), method)(request, timeout=60)

    def person(self, person_id: str) -> Any:
        with channel(self.r.env, self.r.op_a) as ch:
            return pbg.IdentityServiceStub(ch).GetPerson(pb.GetPersonRequest(person_id=person_id), timeout=30).person

    def pdf(self, title: str) -> bytes:
        path = self.base / f"{title.replace(' ', '-')}.pdf"
        make_contract_pdf(path, title, ["Dave Console", "Carol Console"], pages=1)
        return path.read_bytes()


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("console")
    tok = make_token("console-srv")
    port = free_port()
    r = start_running(base, tok.label, tok.pin, extra=f'\n[portal]\nlisten = "127.0.0.1:{port}"\n')
    try:
        with channel(r.env, r.op_a) as op:
            ids = {n: register_verified(r, op, f"{n.title()} Console", prc_id(birth, seq), phone, f"{n}@example.com")
                   for n, (birth, seq, phone) in PEOPLE.items()}
        files = {"op_a": r.op_a, "op_b": r.op_b, "reviewer_a": r.reviewer_a}
        for n in PEOPLE:
            admin(r.env, "remote-key", "create", ids[n], "--evidence", "ID card seen", "--out", str(base / n))
            files[n] = ClientFiles(base / n / "client.crt", base / n / "client.key", base / n / "ca.pem")
        yield World(r, base, ids, files, f"https://127.0.0.1:{port}")
    finally:
        assert r.server.stop() == 0
    for secret in ("Console Lease", "wrong party", "not the right person"):  # titles, reasons: never logged
        assert secret not in r.server.log


class Browser:
    """A cookie-keeping HTTPS client presenting a client certificate (or none), following redirects."""

    def __init__(self, w: World, who: str | None) -> None:
        ctx = ssl.create_default_context(cafile=str(w.r.env.ca_pem))
        if who is not None:
            ctx.load_cert_chain(str(w.files[who].cert), str(w.files[who].key))
        self.base = w.portal
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                                  urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, dict[str, str], bytes, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes, str]:
        data = urllib.parse.urlencode(form).encode()
        return self._open(urllib.request.Request(self.base + path, data=data, method="POST"))

    def post_multipart(self, path: str, fields: dict[str, str], pdf: bytes,
                       filename: str = "lease.pdf") -> tuple[int, dict[str, str], bytes, str]:
        boundary = "----signet" + secrets.token_hex(8)
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="document"; filename="{filename}"\r\n'
                     "Content-Type: application/pdf\r\n\r\n".encode() + pdf + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        req = urllib.request.Request(self.base + path, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return self._open(req)

    def _open(self, req: urllib.request.Request) -> tuple[int, dict[str, str], bytes, str]:
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read(), resp.url
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read(), e.url


def _hidden(html: bytes, name: str) -> str:
    m = re.search(rb'name="' + name.encode() + rb'" value="([^"]+)"', html)
    assert m, html[:600]
    return m.group(1).decode()


def _state(w: World, envelope_id: str) -> int:
    return w.call("dave", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope.state


def _form(w: World, title: str, **extra: str) -> dict[str, str]:
    return {"title": title, "message": "Please sign 请签署", "r1_person": w.ids["carol"], "r1_role": "signer",
            "r1_order": "1", "r1_method": "remote", "r1_page": "1", "r1_x1": "56", "r1_y1": "56", "r1_x2": "276",
            "r1_y2": "116", "expires": "10", **extra}


def test_a_sender_creates_sends_follows_downloads_and_voids(world: World) -> None:
    w = world
    b = Browser(w, "dave")
    status, headers, html, _ = b.get("/s/")
    assert status == 200, html
    assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    cookie = headers["Set-Cookie"]
    assert all(f in cookie for f in ("signet_console=", "Path=/s;", "Secure", "HttpOnly", "SameSite=Strict"))
    assert b"<script" not in html and w.ids["dave"].encode() in html

    status, _, page, _ = b.get("/s/new")
    assert status == 200 and b'enctype="multipart/form-data"' in page
    csrf, form_id = _hidden(page, "csrf"), _hidden(page, "form_id")
    pdf = w.pdf("Console Lease Alder")
    fields = _form(w, "Console Lease Alder", csrf=csrf, form_id=form_id)
    assert b.post_multipart("/s/new", {**fields, "csrf": "0" * 64}, pdf)[0] == 403  # a wrong token creates nothing
    status, _, placing, url = b.post_multipart("/s/new", fields, pdf)  # then the draft's placement step
    assert status == 200 and b"Draft created" in placing and "/place?done=create" in url, placing[:800]
    m = re.search(r"/s/env/([A-Za-z0-9_]+)/place", url)
    assert m
    envelope_id = m.group(1)
    again = b.post_multipart("/s/new", fields, pdf)  # a double submit: the same draft, not a second one
    assert again[0] == 200 and again[3] == url
    status, _, draft, _ = b.get(f"/s/env/{envelope_id}")
    assert status == 200 and b"draft" in draft and f"/s/env/{envelope_id}/place".encode() in draft
    listed = w.call("dave", "ListEnvelopes", pb.ListEnvelopesRequest())
    assert [e.id for e in listed.envelopes if e.title == "Console Lease Alder"] == [envelope_id]
    env = w.call("dave", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
    assert env.state == pb.ENVELOPE_STATE_DRAFT and env.message == "Please sign 请签署"
    [r] = env.recipients
    assert r.person_id == w.ids["carol"] and r.signing_method == pb.SIGNING_METHOD_REMOTE
    assert (r.field.page, r.field.x1, r.field.y2) == (1, 56, 116)

    send = {"csrf": _hidden(draft, "csrf"), "form_id": _hidden(draft, "form_id")}
    assert b.post(f"/s/env/{envelope_id}/send", {"form_id": send["form_id"]})[0] == 403  # no CSRF token
    assert b.post(f"/s/env/{envelope_id}/send", {**send, "csrf": "é" * 64})[0] == 403  # non-ASCII: 403, not 500
    assert _state(w, envelope_id) == pb.ENVELOPE_STATE_DRAFT  # nothing changed
    status, _, sent, _ = b.post(f"/s/env/{envelope_id}/send", send)
    assert status == 200 and b"Sent." in sent and b"waiting for signatures" in sent
    assert b.post(f"/s/env/{envelope_id}/send", send)[0] == 200  # the same form again: answered once, no error
    after = w.call("dave", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
    assert after.state == pb.ENVELOPE_STATE_SENT
    assert 9.9 < (after.expires_at.ToSeconds() - time.time()) / 86400 <= 10  # the form's expiry days
    assert re.search(rb"UTC</time></td><td>sent</td>", sent)
    assert len(UTC_MS.findall(sent)) >= 2 and b">created<" in sent and b">sent<" in sent

    doc = re.search(rb'href="/s/env/' + envelope_id.encode() + rb'/doc/([A-Za-z0-9_]+)"', sent)
    assert doc
    status, headers, got, _ = b.get(f"/s/env/{envelope_id}/doc/{doc.group(1).decode()}")
    assert status == 200 and got == pdf and "attachment" in headers["Content-Disposition"]
    status, _, listing, _ = b.get("/s/")
    assert status == 200 and b"Console Lease Alder" in listing and f"/s/env/{envelope_id}".encode() in listing

    void = {"csrf": _hidden(sent, "csrf"), "form_id": _hidden(sent, "form_id"), "reason": "wrong party"}
    assert b.post(f"/s/env/{envelope_id}/void", {**void, "csrf": "1" * 64})[0] == 403
    assert Browser(w, "dave").post(f"/s/env/{envelope_id}/void", void)[0] == 403  # another session's token
    assert _state(w, envelope_id) == pb.ENVELOPE_STATE_SENT
    status, _, voided, _ = b.post(f"/s/env/{envelope_id}/void", void)
    assert status == 200 and b"Voided." in voided and b">voided<" in voided
    assert _state(w, envelope_id) == pb.ENVELOPE_STATE_VOIDED


def test_a_bad_form_is_shown_again_with_what_is_wrong_and_creates_nothing(world: World) -> None:
    w = world
    b = Browser(w, "dave")
    page = b.get("/s/new")[2]
    fields = _form(w, "Console Lease Bad", csrf=_hidden(page, "csrf"), form_id=_hidden(page, "form_id"),
                   r1_page="7")
    status, _, again, _ = b.post_multipart("/s/new", fields, w.pdf("Console Lease Bad"))
    assert status == 400 and b'role="alert"' in again and b"page 7" in again
    assert b'value="Console Lease Bad"' in again  # as filled in
    status, _, again, _ = b.post_multipart("/s/new", {**fields, "r1_page": "1"}, b"not a pdf", "x.txt")
    assert status == 400 and b"must be a PDF" in again
    listed = w.call("dave", "ListEnvelopes", pb.ListEnvelopesRequest())
    assert not [e for e in listed.envelopes if e.title == "Console Lease Bad"]


def _signed_by_carol(w: World, title: str) -> Any:
    """An envelope Dave creates and sends to Carol alone, signed by her remotely (code from the outbox)."""
    draft = w.call("dave", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title,
        recipients=[pb.RecipientSpec(person_id=w.ids["carol"], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
                                     signing_method=pb.SIGNING_METHOD_REMOTE, field=FIELD)],
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=w.pdf(title))]))
    env = w.call("dave", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=draft.envelope.id)).envelope
    doc = env.documents[0]
    challenge = w.call("carol", "StartSigning", pb.StartSigningRequest(
        envelope_id=env.id, document_id=doc.id, revision_sha256=doc.current_sha256)).challenge
    w.call("carol", "SignRemotely", pb.SignRemotelyRequest(
        envelope_id=env.id, document_id=doc.id, revision_sha256=doc.current_sha256, code_id=challenge.code_id,
        one_time_code=latest_code(w.r.env, PEOPLE["carol"][2])))
    return env


def test_evidence_of_a_completed_contract_and_the_operators_search(world: World) -> None:
    w = world
    title = "Console Lease Birch"
    env = _signed_by_carol(w, title)
    assert _state(w, env.id) == pb.ENVELOPE_STATE_COMPLETED

    b = Browser(w, "dave")
    page = b.get(f"/s/env/{env.id}")[2]
    assert b"completed" in page and f"/s/env/{env.id}/evidence".encode() in page
    deadline = time.monotonic() + 120
    while (got := b.get(f"/s/env/{env.id}/evidence"))[0] == 409:  # not sealed yet
        assert time.monotonic() < deadline, "the contract was not sealed"
        time.sleep(1)
    assert got[0] == 200 and got[2].startswith(b"PK") and got[1]["Content-Type"] == "application/zip"

    op = Browser(w, "op_a")
    home = op.get("/o/")[2]
    assert b"Contract search" in home
    assert op.post("/o/search", {"q": "Birch"})[0] == 403  # a POST without its CSRF token
    status, _, found, _ = op.post("/o/search", {"q": "Birch", "csrf": _hidden(home, "csrf")})
    assert status == 200 and title.encode() in found and f"/o/contract/{env.id}".encode() in found
    status, _, contract, _ = op.get(f"/o/contract/{env.id}")
    assert status == 200 and env.id.encode() in contract and b"Carol Console" in contract
    status, headers, bundle, _ = op.get(f"/o/contract/{env.id}/evidence")
    assert status == 200 and bundle.startswith(b"PK") and "attachment" in headers["Content-Disposition"]
    status, _, sealed, _ = op.get(f"/o/contract/{env.id}/file/0")
    assert status == 200 and len(sealed) > 1000

    other = Browser(w, "op_b")  # another organisation's operator: not found, and its search finds nothing
    assert other.get(f"/o/contract/{env.id}")[0] == 404
    assert other.get(f"/o/contract/{env.id}/evidence")[0] == 404
    status, _, none, _ = other.post("/o/search", {"q": "Birch", "csrf": _hidden(other.get("/o/")[2], "csrf")})
    assert status == 200 and title.encode() not in none and b"No contract matches" in none
    assert Browser(w, "carol").get(f"/s/env/{env.id}")[0] == 404  # a recipient is not its sender
    assert b.get("/s/env/env_000000000000000000000000")[0] == 404


def test_an_operator_approves_and_rejects_pending_identities(world: World) -> None:
    w = world
    with channel(w.r.env, w.r.op_a) as ch:
        frank = register_verified(w.r, ch, "Frank Console", prc_id("19700303", "514"), "+8613700137034",
                                  "frank@example.com", approve=False)
        gina = register_verified(w.r, ch, "Gina Console", prc_id("19710404", "625"), "+8613700137035",
                                 "gina@example.com", approve=False)
    reviewer = Browser(w, "reviewer_a")
    home = reviewer.get("/o/")[2]
    assert frank.encode() in home and gina.encode() in home and b"Frank Console" in home
    csrf = _hidden(home, "csrf")
    assert reviewer.post(f"/o/person/{frank}/approve", {"evidence": "ID card seen"})[0] == 403
    registrar = Browser(w, "op_a")  # four eyes: the operator who registered Frank may not approve him
    status, _, page, _ = registrar.post(f"/o/person/{frank}/approve",
                                        {"evidence": "ID card seen", "csrf": _hidden(registrar.get("/o/")[2], "csrf")})
    assert status == 403 and b'role="alert"' in page
    assert w.person(frank).status == pb.PERSON_STATUS_PENDING
    status, _, done, _ = reviewer.post(f"/o/person/{frank}/approve",
                                       {"evidence": "ID card seen at the branch", "reference": "t-9", "csrf": csrf})
    assert status == 200 and b"Approved." in done and frank.encode() not in done
    assert w.person(frank).status == pb.PERSON_STATUS_APPROVED
    status, _, done, _ = reviewer.post(f"/o/person/{gina}/reject", {"reason": "not the right person", "csrf": csrf})
    assert status == 200 and b"Rejected." in done
    assert w.person(gina).status == pb.PERSON_STATUS_REJECTED


def test_without_a_certificate_with_a_revoked_one_or_in_the_wrong_area_nothing_is_shown(world: World) -> None:
    w = world
    anonymous = Browser(w, None)
    for area in ("/s/", "/o/", "/s/new", "/o/contract/env_0"):
        status, _, page, _ = anonymous.get(area)
        assert status == 401 and b"client certificate" in page and b"PKCS#12" in page, (area, page[:300])
    assert anonymous.post("/o/search", {"q": "x"})[0] == 401
    status, _, page, _ = Browser(w, "dave").get("/o/")
    assert status == 403 and b"Only an operator" in page
    assert Browser(w, "op_a").get("/s/")[0] == 403
    assert Browser(w, "dave").get("/s/nothing-here")[0] == 404

    erin = Browser(w, "erin")
    assert erin.get("/s/")[0] == 200
    admin(w.r.env, "cert", "revoke", serial_of(w.files["erin"].cert), "--reason", "key_compromise")
    status, _, page, _ = Browser(w, "erin").get("/s/")
    assert status == 401 and b"revoked" in page and w.ids["erin"].encode() not in page
    assert erin.get("/s/")[0] == 401  # the same session: refused at once too


# -- in a real browser: Debian's chromium driven by Playwright, keyboard only, axe-core on the pages -------------
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal-console"  # git-ignored: the screenshots


@pytest.fixture(scope="module")
def chromium(world: World) -> Iterator[Any]:
    with browser.chromium(world.r.env.state / "tls" / "server.crt") as b:
        yield b


def _signed_in(chromium: Any, w: World, who: str, **options: Any) -> Any:
    """A browser context presenting ``who``'s client certificate to the portal (axe-core is injected: no CSP).
    Playwright presents client certificates through a TLS proxy of its own, which chromium then talks to: the
    pinned server key does not apply there, so this context ignores certificate errors."""
    return chromium.new_context(bypass_csp=True, ignore_https_errors=True, client_certificates=[{
        "origin": w.portal, "certPath": str(w.files[who].cert), "keyPath": str(w.files[who].key)}], **options)


def test_in_a_browser_a_sender_creates_and_sends_with_the_keyboard_only_and_the_pages_pass_axe(
        world: World, chromium: Any) -> None:
    w = world
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = w.base / "browser-lease.pdf"
    pdf.write_bytes(w.pdf("Console Lease Cedar"))
    ctx = _signed_in(chromium, w, "dave", viewport={"width": 1000, "height": 1400})
    page = ctx.new_page()
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(w.portal) else None)
    page.goto(w.portal + "/s/new")
    assert page.locator("h1").inner_text().startswith("New envelope")
    browser.tab_to(page, "Title")
    page.keyboard.type("Console Lease Cedar")
    browser.tab_to(page, "Document")
    assert page.evaluate("() => document.activeElement.type") == "file"
    # the file itself is picked in the system's dialog, outside the page: set on the focused input here
    page.locator(":focus").set_input_files(str(pdf))
    browser.tab_to(page, "Person id")
    page.keyboard.type(w.ids["carol"])
    page.screenshot(path=str(ARTIFACTS / "01-create.png"), full_page=True)
    assert browser.axe(page) == []
    browser.tab_to(page, "Create draft")
    page.keyboard.press("Enter")
    page.wait_for_selector("[role=status]")  # the draft's placement step: the boxes as they are, saved
    assert "Draft created" in page.locator("[role=status]").first.inner_text() and "/place" in page.url
    browser.save_and_send(page)
    page.screenshot(path=str(ARTIFACTS / "02-sent.png"), full_page=True)
    assert "waiting for signatures" in page.locator("main").inner_text()
    assert browser.axe(page) == []
    envelope_id = page.url.rsplit("/", 1)[-1].split("?", 1)[0]
    assert _state(w, envelope_id) == pb.ENVELOPE_STATE_SENT
    assert external == []  # no request leaves the portal
    ctx.close()


def test_in_a_browser_an_operator_finds_a_contract_by_keyword_with_the_keyboard_only(
        world: World, chromium: Any) -> None:
    """The contract Dave sent Carol (completed and sealed in the evidence test above, or here) is found by a word of
    its title from the operator's search, opened, and its evidence bundle offered; every page passes axe, and the
    operator's and sender's pages fit a phone's width."""
    w = world
    title = "Console Lease Juniper"
    env = _signed_by_carol(w, title)
    op = Browser(w, "op_a")
    csrf = _hidden(op.get("/o/")[2], "csrf")
    deadline = time.monotonic() + 120
    while title.encode() not in op.post("/o/search", {"q": "Juniper", "csrf": csrf})[2]:  # archived once sealed
        assert time.monotonic() < deadline, "the contract was not archived"
        time.sleep(1)

    ctx = _signed_in(chromium, w, "op_a", viewport={"width": 1000, "height": 1200})
    page = ctx.new_page()
    page.goto(w.portal + "/o/")
    assert browser.axe(page) == []
    browser.tab_to(page, "Words")
    page.keyboard.type("Juniper")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"text={title}")
    page.screenshot(path=str(ARTIFACTS / "20-search.png"), full_page=True)
    assert browser.axe(page) == []
    browser.tab_to(page, title)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/o/contract/{env.id}")
    assert "Carol Console" in page.locator("main").inner_text()
    assert page.locator(f"a[href='/o/contract/{env.id}/evidence']").count() == 1
    page.screenshot(path=str(ARTIFACTS / "21-contract.png"), full_page=True)
    assert browser.axe(page) == []
    ctx.close()
    for who, path in (("op_a", f"/o/contract/{env.id}"), ("dave", f"/s/env/{env.id}"), ("dave", "/s/new")):
        phone = _signed_in(chromium, w, who, viewport={"width": 375, "height": 740})
        small = phone.new_page()
        small.goto(w.portal + path)
        assert small.evaluate("() => document.scrollingElement.scrollWidth") <= 376, path  # no sideways scrolling
        phone.close()
