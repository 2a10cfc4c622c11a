"""The recipients' portal against a real `signet-server` (``[portal] listen``), driven over HTTPS like a browser
without script would: Carol, who signs remotely, opens the link of her notice, sees the document page by page
with its SHA-256, asks for a code, and signs; the downloaded PDF verifies under the signing root.  Refusals
change nothing: a form without its CSRF token, a wrong code, an unknown link, a document of another envelope.
Another envelope she declines from the portal."""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
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

PEOPLE = {"carol": ("19850615", "231", "+8613700137021"), "dave": ("19790101", "462", "+8613700137022")}
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


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("portal")
    tok = make_token("portal-srv")
    port = free_port()
    r = start_running(base, tok.label, tok.pin, extra=f'\n[portal]\nlisten = "127.0.0.1:{port}"\n')
    try:
        with channel(r.env, r.op_a) as op:
            ids = {n: register_verified(r, op, f"{n.title()} Portal", prc_id(birth, seq), phone, f"{n}@example.com")
                   for n, (birth, seq, phone) in PEOPLE.items()}
        files = {}
        for n in PEOPLE:
            admin(r.env, "remote-key", "create", ids[n], "--evidence", "ID card seen", "--out", str(base / n))
            files[n] = ClientFiles(base / n / "client.crt", base / n / "client.key", base / n / "ca.pem")
        assert f"portal=https://127.0.0.1:{port}" in r.server.ready_line
        yield World(r, base, ids, files, f"https://127.0.0.1:{port}")
    finally:
        assert r.server.stop() == 0
    assert not re.search(r"/r/[A-Za-z0-9_-]{30,}", r.server.log)  # a link's token never reaches the log


class Browser:
    """A cookie-keeping HTTPS client that trusts the Signet TLS root and follows redirects, as a browser would."""

    def __init__(self, ca_pem: Path) -> None:
        ctx = ssl.create_default_context(cafile=str(ca_pem))
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                                  urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, url: str) -> tuple[int, dict[str, str], bytes]:
        return self._open(urllib.request.Request(url))

    def post(self, url: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return self._open(urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST"))

    def _open(self, req: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


def _send(w: World, title: str) -> pb.Envelope:
    path = w.base / f"{title.replace(' ', '-')}.pdf"
    make_contract_pdf(path, title, ["Dave Portal", "Carol Portal"], pages=2)
    draft = w.call("dave", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title,
        recipients=[pb.RecipientSpec(person_id=w.ids["carol"], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
                                     signing_method=pb.SIGNING_METHOD_REMOTE, field=FIELD)],
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=path.read_bytes())]))
    return w.call("dave", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=draft.envelope.id)).envelope


def _link(w: World, envelope_id: str) -> str:
    """The portal link in Carol's "your turn" notice (her e-mail, in the outbox here)."""
    return notice_link(w.r.env, "carol@example.com", envelope_id)


def _csrf(html: bytes) -> str:
    m = re.search(rb'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, html[:400]
    return m.group(1).decode()


def _state(w: World, envelope_id: str) -> tuple[int, int, list[int]]:
    env = w.call("dave", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
    return env.state, env.version, [d.signatures for d in env.documents]


def test_a_remote_recipient_reviews_and_signs_from_the_link(world: World) -> None:
    w = world
    env = _send(w, "Portal Lease Quince")
    link = _link(w, env.id)
    b = Browser(w.r.env.ca_pem)
    status, headers, html = b.get(link)
    assert status == 200, html
    assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    cookie = headers["Set-Cookie"]
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict"))
    doc = env.documents[0]
    assert b"Portal Lease Quince" in html and doc.current_sha256.encode() in html and b"<script" not in html
    png = b.get(f"{link}/doc/{doc.id}/page/2.png")
    assert png[0] == 200 and png[2].startswith(b"\x89PNG") and png[1]["Content-Type"] == "image/png"
    assert b.get(f"{link}/doc/{doc.id}/page/3.png")[0] == 404  # a 2-page document

    before = _state(w, env.id)
    form = {"document": doc.id, "sha256": doc.current_sha256}
    assert b.post(f"{link}/code", form)[0] == 403  # no CSRF token: refused, nothing sent
    assert b.post(f"{link}/code", {**form, "csrf": "0" * 64})[0] == 403
    status, _, page = b.post(f"{link}/code", {**form, "csrf": _csrf(html)})
    assert status == 200 and b'name="code"' in page
    code_id = re.search(rb'name="code_id" value="([^"]+)"', page)
    assert code_id
    code = latest_code(w.r.env, PEOPLE["carol"][2])
    wrong = "000000" if code != "000000" else "111111"
    sign = {**form, "csrf": _csrf(page), "code_id": code_id.group(1).decode()}
    status, _, again = b.post(f"{link}/sign", {**sign, "code": wrong})
    assert status == 401 and b'name="code"' in again
    assert _state(w, env.id)[2] == before[2]  # nothing signed
    status, _, done = b.post(f"{link}/sign", {**sign, "code": code})
    assert status == 200 and b"Signed" in done  # followed the redirect back to the envelope
    state, _, sigs = _state(w, env.id)
    assert state == pb.ENVELOPE_STATE_COMPLETED and sigs == [1]
    status, headers, pdf = b.get(f"{link}/doc/{doc.id}/file")
    assert status == 200 and pdf.startswith(b"%PDF") and "attachment" in headers["Content-Disposition"]
    signed = w.base / "signed-from-portal.pdf"
    signed.write_bytes(pdf)
    root = pem.unarmor(w.r.env.signing_root.read_bytes())[2]
    report = verify_pdf(signed, [root], revocation="offline")
    assert [s.ok for s in report.signatures] == [True]


def test_a_remote_recipient_fills_her_form_fields_in_the_signing_form(world: World) -> None:
    """Carol's own form fields (placed by the sender) are inputs of her signing form: a required one left empty is
    the form again with what is missing, nothing signed, the code still good; filled, they land in her revision."""
    w = world
    title = "Portal Lease Fields"
    path = w.base / "fields.pdf"
    make_contract_pdf(path, title, ["Dave Portal", "Carol Portal"], pages=2)
    draft = w.call("dave", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title,
        recipients=[pb.RecipientSpec(
            person_id=w.ids["carol"], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
            signing_method=pb.SIGNING_METHOD_REMOTE, field=FIELD, form_fields=[
                pb.FormFieldSpec(name="tenant", kind=pb.FORM_FIELD_KIND_TEXT, page=1, x1=300, y1=56, x2=500, y2=80,
                                 required=True),
                pb.FormFieldSpec(name="pets", kind=pb.FORM_FIELD_KIND_CHECKBOX, page=2, x1=56, y1=200, x2=74,
                                 y2=218)])],
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=path.read_bytes())]))
    env = w.call("dave", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=draft.envelope.id)).envelope
    doc = env.documents[0]
    link = _link(w, env.id)
    b = Browser(w.r.env.ca_pem)
    html = b.get(link)[2]
    status, _, page = b.post(f"{link}/code", {"document": doc.id, "sha256": doc.current_sha256, "csrf": _csrf(html)})
    assert status == 200 and b'name="field.tenant"' in page and b'type="checkbox"' in page
    assert re.search(rb'name="field.tenant"[^>]*required', page)
    code_id = re.search(rb'name="code_id" value="([^"]+)"', page)
    assert code_id
    code = latest_code(w.r.env, PEOPLE["carol"][2])
    sign = {"document": doc.id, "sha256": doc.current_sha256, "csrf": _csrf(page), "code_id": code_id.group(1).decode(),
            "code": code}
    status, _, again = b.post(f"{link}/sign", {**sign, "field.tenant": "", "field.pets": "yes"})
    assert status == 400 and b"tenant" in again and b'name="code"' in again and b"checked" in again
    assert _state(w, env.id)[2] == [0]  # nothing signed
    status, _, done = b.post(f"{link}/sign", {**sign, "field.tenant": "Carol Portal 卡罗尔", "field.pets": "yes"})
    assert status == 200 and b"Signed" in done
    status, _, pdf = b.get(f"{link}/doc/{doc.id}/file")
    from pyhanko.pdf_utils.reader import PdfFileReader

    signed = w.base / "fields-signed.pdf"
    signed.write_bytes(pdf)
    with signed.open("rb") as f:
        fields = {str(x.get_object()["/T"]): x.get_object() for x in PdfFileReader(f).root["/AcroForm"]["/Fields"]}
        assert str(fields["tenant"]["/V"]) == "Carol Portal 卡罗尔" and str(fields["pets"]["/V"]) == "/Yes"


def test_links_and_documents_of_others_are_not_found(world: World) -> None:
    w = world
    mine, other = _send(w, "Portal Lease Rowan"), _send(w, "Portal Lease Sorrel")
    link = _link(w, mine.id)
    b = Browser(w.r.env.ca_pem)
    assert b.get(link)[0] == 200
    assert b.get(link[:-4] + "AAAA")[0] == 404  # an unknown token
    assert b.get(f"{link}/doc/{other.documents[0].id}/file")[0] == 404  # another envelope's document
    assert b.get(w.portal + "/r/short")[0] == 404


def test_a_recipient_declines_from_the_portal(world: World) -> None:
    w = world
    env = _send(w, "Portal Lease Tansy")
    link = _link(w, env.id)
    b = Browser(w.r.env.ca_pem)
    html = b.get(link)[2]
    assert b.post(f"{link}/decline", {"reason": "wrong rent"})[0] == 403  # no CSRF: nothing changes
    assert _state(w, env.id)[0] == pb.ENVELOPE_STATE_SENT
    status, _, page = b.post(f"{link}/decline", {"reason": "wrong rent", "csrf": _csrf(html)})
    assert status == 200 and b"declined" in page
    assert _state(w, env.id)[0] == pb.ENVELOPE_STATE_DECLINED


# -- in a real browser: Debian's chromium driven by Playwright, keyboard only, axe-core on every page ------------
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal"  # git-ignored: the screenshots


@pytest.fixture(scope="module")
def chromium(world: World) -> Iterator[Any]:
    with browser.chromium(world.r.env.state / "tls" / "server.crt") as b:
        yield b


def test_in_a_browser_with_the_keyboard_only_the_recipient_signs_and_every_page_passes_axe(
        world: World, chromium: Any) -> None:
    w = world
    env = _send(w, "Portal Lease Umber")
    link = _link(w, env.id)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx = chromium.new_context(bypass_csp=True, viewport={"width": 1000, "height": 1400})  # axe is injected
    page = ctx.new_page()
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(w.portal) else None)
    page.goto(link)
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Portal Lease Umber"
    assert page.locator("img.page").count() == 2 and all(
        page.evaluate("img => img.naturalWidth", img.element_handle()) > 100 for img in page.locator("img.page").all())
    page.screenshot(path=str(ARTIFACTS / "01-review.png"), full_page=True)
    assert browser.axe(page) == []
    browser.tab_to(page, "Send me a code")
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=code]")
    browser.tab_to(page, "One-time code")
    page.keyboard.type(latest_code(w.r.env, PEOPLE["carol"][2]))
    page.screenshot(path=str(ARTIFACTS / "02-code.png"), full_page=True)
    assert browser.axe(page) == []
    browser.tab_to(page, "Sign")
    page.keyboard.press("Enter")
    page.wait_for_selector("[role=status]")
    assert "Signed" in page.locator("[role=status]").inner_text()
    page.screenshot(path=str(ARTIFACTS / "03-signed.png"), full_page=True)
    assert browser.axe(page) == []
    assert _state(w, env.id)[0] == pb.ENVELOPE_STATE_COMPLETED
    assert external == []  # no request leaves the portal
    phone = chromium.new_context(viewport={"width": 375, "height": 740})
    small = phone.new_page()
    small.goto(link)
    assert small.evaluate("() => document.scrollingElement.scrollWidth") <= 376  # no sideways scrolling
    small.screenshot(path=str(ARTIFACTS / "04-phone.png"), full_page=True)
    phone.close()
    ctx.close()


def test_form_posts_beyond_the_per_address_limit_get_a_clear_429(make_token, tmp_path_factory) -> None:
    """A portal of its own with ``posts_per_minute = 3``: the fourth form post from one address within the minute is
    refused with 429, a page saying when to come back and Retry-After, before anything is looked at; pages that
    are only read still answer."""
    import http.client

    base = tmp_path_factory.mktemp("portal-limit")
    tok = make_token("portal-limit")
    port = free_port()
    r = start_running(base, tok.label, tok.pin, extra=f'\n[portal]\nlisten = "127.0.0.1:{port}"\n'
                                                      'posts_per_minute = 3\n')
    try:
        ctx = ssl.create_default_context(cafile=str(r.env.ca_pem))

        def call(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            conn.request(method, path, body=b"csrf=x" if method == "POST" else None,
                         headers={"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {})
            resp = conn.getresponse()
            out = resp.status, dict(resp.getheaders()), resp.read()
            conn.close()
            return out

        nowhere = "/r/" + "A" * 43 + "/code"
        assert [call("POST", nowhere)[0] for _ in range(3)] == [404, 404, 404]  # unknown link: looked at, refused
        status, headers, page = call("POST", nowhere)
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
        assert b"too many requests" in page and b"Content-Security-Policy" not in page
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert call("GET", "/portal.css")[0] == 200
    finally:
        assert r.server.stop() == 0
