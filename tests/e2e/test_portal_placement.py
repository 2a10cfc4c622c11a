"""Placing signature boxes on a draft's pages in the portal (``/s/env/<id>/place``) against a real `signet-server`:
the sender, signed in with the client certificate the server issued, drags Bob's box onto page 2 with the mouse and
moves and resizes Alice's with the keyboard in Debian's chromium (the page's one script, ``/s/place.js``, under the
page's own Content-Security-Policy), saves and sends; GetEnvelope hands out the boxes in PDF points, and once both
have signed remotely (Alice through the API, Bob from the link of his notice) each signature's widget is on that
page with that ``/Rect``.  axe-core finds no WCAG 2 A/AA violation on the placement page.

Over plain HTTPS (the numbers of the form, no script): the page, its headers and images; a placement without its
CSRF token, from another sender, with a box off the page or too small, and after the send are each refused and
change nothing."""

from __future__ import annotations

import http.cookiejar
import io
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from formats.samplepdf import make_contract_pdf
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg

from . import browser as web
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

PEOPLE = {"dave": ("19790101", "481", "+8613700137041"), "alice": ("19850615", "242", "+8613700137042"),
          "bob": ("19900202", "353", "+8613700137043"), "carol": ("19711111", "564", "+8613700137044")}
FIELD = pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal-console"  # git-ignored: the screenshots
AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core"
A4_W, A4_H = 595, 842


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

    def pdf(self, title: str) -> bytes:
        path = self.base / f"{title.replace(' ', '-')}.pdf"
        make_contract_pdf(path, title, ["Dave Placement", "Alice Placement", "Bob Placement"], pages=2)
        return path.read_bytes()

    def envelope(self, envelope_id: str) -> Any:
        return self.call("dave", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope

    def events(self, envelope_id: str) -> list[str]:
        got = self.call("dave", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(envelope_id=envelope_id))
        return [e.type for e in got.events]


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("placement")
    tok = make_token("placement-srv")
    port = free_port()
    r = start_running(base, tok.label, tok.pin, extra=f'\n[portal]\nlisten = "127.0.0.1:{port}"\n')
    try:
        with channel(r.env, r.op_a) as op:
            ids = {n: register_verified(r, op, f"{n.title()} Placement", prc_id(birth, seq), phone,
                                        f"{n}@example.com") for n, (birth, seq, phone) in PEOPLE.items()}
        files = {}
        for n in PEOPLE:
            admin(r.env, "remote-key", "create", ids[n], "--evidence", "ID card seen", "--out", str(base / n))
            files[n] = ClientFiles(base / n / "client.crt", base / n / "client.key", base / n / "ca.pem")
        yield World(r, base, ids, files, f"https://127.0.0.1:{port}")
    finally:
        assert r.server.stop() == 0


class Browser:
    """A cookie-keeping HTTPS client presenting a client certificate, following redirects (no script)."""

    def __init__(self, w: World, who: str) -> None:
        ctx = ssl.create_default_context(cafile=str(w.r.env.ca_pem))
        ctx.load_cert_chain(str(w.files[who].cert), str(w.files[who].key))
        self.base = w.portal
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                                  urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return self._open(urllib.request.Request(path if path.startswith("https:") else self.base + path))

    def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        data = urllib.parse.urlencode(form).encode()
        url = path if path.startswith("https:") else self.base + path
        return self._open(urllib.request.Request(url, data=data, method="POST"))

    def _open(self, req: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


def _csrf(html: bytes) -> str:
    m = re.search(rb'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, html[:600]
    return m.group(1).decode()


def _draft(w: World, title: str) -> pb.Envelope:
    return w.call("dave", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title,
        recipients=[pb.RecipientSpec(person_id=w.ids[n], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=i,
                                     signing_method=pb.SIGNING_METHOD_REMOTE, field=FIELD)
                    for i, n in enumerate(("alice", "bob"), 1)],
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=w.pdf(title))])).envelope


def _boxes(env: Any) -> dict[str, tuple[int, float, float, float, float]]:
    return {r.person_id: (r.field.page, r.field.x1, r.field.y1, r.field.x2, r.field.y2) for r in env.recipients}


def _form(env: Any, csrf: str, **boxes: tuple[Any, ...]) -> dict[str, str]:
    """The placement form: each recipient's box as it is, ``boxes`` (by person id) replacing some."""
    out = {"csrf": csrf}
    for r in env.recipients:
        box = boxes.get(r.person_id, (r.field.page, r.field.x1, r.field.y1, r.field.x2, r.field.y2))
        out.update({f"{r.id}_{k}": str(v) for k, v in zip(("page", "x1", "y1", "x2", "y2"), box, strict=True)})
    return out


def test_the_placement_page_its_headers_and_the_refusals_that_change_nothing(world: World) -> None:
    w = world
    env = _draft(w, "Placement Lease Aspen")
    b = Browser(w, "dave")
    status, headers, page = b.get(f"/s/env/{env.id}/place")
    assert status == 200, page[:800]
    csp = headers["Content-Security-Policy"]
    plain = b.get("/s/")[1]["Content-Security-Policy"]
    assert csp == f"{plain}; script-src 'self'" and "default-src 'none'" in csp  # only script-src 'self' added
    assert re.findall(rb"<script[^>]*>", page) == [b'<script src="/s/place.js" defer>']  # no inline script
    assert b'</script>' in page and page.count(b"<script") == 1
    for path in ("/s/", f"/s/env/{env.id}", "/s/new"):  # every other page stays script-free
        status, headers, other = b.get(path)
        assert status == 200 and "script-src" not in headers["Content-Security-Policy"] and b"<script" not in other
    status, headers, js = b.get("/s/place.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"use strict" in js
    assert f'data-w="{A4_W}" data-h="{A4_H}"'.encode() in page and b'data-page="2"' in page
    doc = env.documents[0].id
    status, headers, png = b.get(f"/s/env/{env.id}/doc/{doc}/page/2.png")
    assert status == 200 and png.startswith(b"\x89PNG") and headers["Content-Type"] == "image/png"
    assert b.get(f"/s/env/{env.id}/doc/{doc}/page/3.png")[0] == 404  # a two-page document
    link = re.search(rb'href="(/s/env/[^"]+/place)"', b.get(f"/s/env/{env.id}")[2])  # the draft's page links here
    assert link and link.group(1).decode() == f"/s/env/{env.id}/place"

    before = _boxes(w.envelope(env.id))
    csrf = _csrf(page)
    good = _form(env, csrf, **{w.ids["bob"]: (2, 300, 440, 520, 500)})
    assert b.post(f"/s/env/{env.id}/place", {k: v for k, v in good.items() if k != "csrf"})[0] == 403  # no CSRF
    assert b.post(f"/s/env/{env.id}/place", {**good, "csrf": "0" * 64})[0] == 403  # a wrong one
    carol = Browser(w, "carol")  # another sender of the same organisation: the draft is not hers
    carol_csrf = _csrf(carol.get("/s/new")[2])
    assert carol.get(f"/s/env/{env.id}/place")[0] == 404
    assert carol.get(f"/s/env/{env.id}/doc/{doc}/page/1.png")[0] == 404
    assert carol.post(f"/s/env/{env.id}/place", {**good, "csrf": carol_csrf})[0] == 404
    for box, words in (((2, 500, 440, 720, 500), b"inside page 2"),  # off the page's right edge
                       ((1, 56, 800, 276, 860), b"inside page 1"),  # off its top
                       ((3, 56, 56, 276, 116), b"page 3 is not a page"),
                       ((1, 56, 56, 70, 116), b"at least 36 by 18"),
                       ((1, 276, 56, 56, 116), b"x1 &lt; x2")):
        status, headers, again = b.post(f"/s/env/{env.id}/place", _form(env, csrf, **{w.ids["bob"]: box}))
        assert status == 400 and b'role="alert"' in again and words in again, (box, again[:1500])
        assert f'value="{box[3]}"'.encode() in again  # the form again, as typed
        assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert _boxes(w.envelope(env.id)) == before and "placed" not in w.events(env.id)  # nothing changed

    status, _, saved = b.post(f"/s/env/{env.id}/place", good)
    assert status == 200 and b"Signature boxes saved" in saved
    assert _boxes(w.envelope(env.id))[w.ids["bob"]] == (2, 300, 440, 520, 500)
    assert w.events(env.id).count("placed") == 1
    w.call("dave", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=env.id))
    after = _boxes(w.envelope(env.id))
    status, _, refused = b.post(f"/s/env/{env.id}/place", _form(env, csrf, **{w.ids["bob"]: (1, 56, 56, 276, 116)}))
    assert status == 409 and b"sent" in refused  # after the send: refused
    assert b.get(f"/s/env/{env.id}/place")[0] == 409
    assert _boxes(w.envelope(env.id)) == after and w.events(env.id).count("placed") == 1


# -- in a real browser: Debian's chromium driven by Playwright, the page's script under its own CSP ---------------
def _link(w: World, envelope_id: str, email: str) -> str:
    return notice_link(w.r.env, email, envelope_id)


def _widgets(pdf: bytes) -> dict[str, tuple[int, list[float]]]:
    """Each signature widget's page (from 1) and /Rect, by field name."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf))
    kids = reader.root["/Pages"]["/Kids"]
    pages = [kids.raw_get(i).idnum for i in range(len(kids))]
    out = {}
    for ref in reader.root["/AcroForm"]["/Fields"]:
        f = ref.get_object()
        out[str(f["/T"])] = (pages.index(f.raw_get("/P").idnum) + 1, [float(v) for v in f["/Rect"]])
    return out


def _near(got: Any, want: Any, slack: float = 2.0) -> bool:
    return len(got) == len(want) and all(abs(float(a) - float(b)) <= slack for a, b in zip(got, want, strict=True))


def _axe(page: Any) -> list[str]:
    """axe-core's WCAG 2 A/AA violations: evaluated through the browser's debugging protocol, which the page's
    Content-Security-Policy does not govern (no bypass: the page's own script runs under the real policy)."""
    [script] = sorted(AXE.glob("axe-*.min.js"))
    page.evaluate(script.read_text(encoding="utf-8"))
    return page.evaluate("async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
                         ".map(v => `${v.id} (${v.nodes.length})`)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with web.chromium() as b:
        yield b


def _drag_to(page: Any, handle: Any, sheet: int, x: float, y: float) -> None:
    """Drag ``handle`` with the mouse so that its top-left corner lands at (x, y) points of page ``sheet``."""
    box = handle.bounding_box()
    img = page.locator(f'.sheet[data-page="{sheet}"] img').bounding_box()
    assert box and img
    scale = (img["width"] - 2) / A4_W  # the image's 1 px border on each side
    grab = (box["x"] + 20, box["y"] + 8)
    drop = (img["x"] + 1 + x * scale + 20, img["y"] + 1 + (A4_H - y) * scale + 8)
    page.mouse.move(*grab)
    page.mouse.down()
    page.mouse.move(*drop, steps=25)
    page.mouse.up()


def _focus(page: Any, selector: str, text: str, limit: int = 60) -> None:
    """Press Tab (round the page) until an element matching ``selector`` whose text holds ``text`` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("([sel, text]) => document.activeElement.matches(sel) && "
                         "document.activeElement.innerText.includes(text)", [selector, text]):
            return
    raise AssertionError(f"{selector} {text!r} cannot be reached with the keyboard")


@contextmanager
def _draft_in_browser(w: World, chromium: Any, title: str, filename: str) -> Iterator[tuple[Any, str, list[str]]]:
    """Dave signed in (his client certificate), a draft from the create form (Alice and Bob sign remotely, the
    numbers left as they are), its placement page open: (the page, the envelope id, what went wrong -- requests
    leaving the portal, script errors, CSP refusals). No bypass_csp: the page's script runs under its own policy."""
    pdf = w.base / filename
    pdf.write_bytes(w.pdf(title))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx = chromium.new_context(ignore_https_errors=True, viewport={"width": 1000, "height": 2500},
                               client_certificates=[{"origin": w.portal, "certPath": str(w.files["dave"].cert),
                                                     "keyPath": str(w.files["dave"].key)}])
    try:
        page = ctx.new_page()
        problems: list[str] = []
        page.on("request", lambda r: problems.append(f"left the portal: {r.url}")
                if not r.url.startswith(w.portal) else None)
        page.on("console", lambda m: problems.append(f"{m.text} {m.location.get('url', '')}")
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(w.portal + "/s/new")
        page.fill("#title", title)
        page.set_input_files("#document", str(pdf))
        for i, name in ((1, "alice"), (2, "bob")):
            page.fill(f"#r{i}_person", w.ids[name])
            page.select_option(f"#r{i}_method", "remote")
        page.click("text=Create draft")
        page.wait_for_selector("button.sigbox")
        assert "/place" in page.url and "Draft created" in page.locator("[role=status]").first.inner_text()
        envelope_id = re.search(r"/s/env/([^/?]+)/place", page.url).group(1)  # type: ignore[union-attr]
        yield page, envelope_id, problems
    finally:
        ctx.close()


def test_in_a_browser_the_sender_drags_and_moves_the_boxes_and_the_signatures_land_there(
        world: World, chromium: Any) -> None:
    w = world
    title = "Placement Lease Birch"
    with _draft_in_browser(w, chromium, title, "browser-placement.pdf") as (page, envelope_id, problems):
        env = w.envelope(envelope_id)
        rid = {r.person_id: r.id for r in env.recipients}
        alice, bob = rid[w.ids["alice"]], rid[w.ids["bob"]]
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ARTIFACTS / "10-placement.png"), full_page=True)

        def field(r: str) -> list[float]:
            return [float(page.input_value(f"#{r}_{k}")) for k in ("page", "x1", "y1", "x2", "y2")]

        assert field(alice) == field(bob) == [1, 56, 56, 276, 116]  # the create form's numbers

        # the mouse: Bob's box onto page 2, its top-left corner at (300, 500) points
        _drag_to(page, page.locator("button.sigbox", has_text="Bob Placement"), 2, 300, 500)
        assert _near(field(bob), [2, 300, 440, 520, 500])
        assert page.locator('.sheet[data-page="2"] button.sigbox').count() == 1

        # the keyboard: Alice's box 20 points right and 10 up, 10 wider, 10 taller; to page 2 and back
        _focus(page, "button.sigbox", "Alice Placement")
        for key in ["ArrowRight"] * 4 + ["ArrowUp"] * 2 + ["Shift+ArrowRight"] * 2 + ["Shift+ArrowDown"] * 2:
            page.keyboard.press(key)
        assert field(alice) == [1, 76, 56, 306, 126]
        page.keyboard.press("PageDown")
        assert field(alice)[0] == 2 and "Alice Placement" in page.evaluate("document.activeElement.innerText")
        page.keyboard.press("PageUp")
        assert field(alice) == [1, 76, 56, 306, 126]
        assert "Alice Placement: page 1" in page.locator("#place-status").inner_text()
        page.screenshot(path=str(ARTIFACTS / "11-placed.png"), full_page=True)
        assert _axe(page) == []

        web.save_and_send(page)
        page.screenshot(path=str(ARTIFACTS / "12-placed-and-sent.png"), full_page=True)
        assert problems == []  # nothing left the portal; no script error, no CSP refusal

    sent = w.envelope(envelope_id)
    assert sent.state == pb.ENVELOPE_STATE_SENT
    boxes = {r.id: (r.field.page, r.field.x1, r.field.y1, r.field.x2, r.field.y2) for r in sent.recipients}
    assert boxes[alice] == (1, 76, 56, 306, 126)
    assert _near(boxes[bob], (2, 300, 440, 520, 500))

    # Alice signs through the API, Bob from the link of his notice: both remotely
    doc = sent.documents[0]
    challenge = w.call("alice", "StartSigning", pb.StartSigningRequest(
        envelope_id=envelope_id, document_id=doc.id, revision_sha256=doc.current_sha256)).challenge
    w.call("alice", "SignRemotely", pb.SignRemotelyRequest(
        envelope_id=envelope_id, document_id=doc.id, revision_sha256=doc.current_sha256, code_id=challenge.code_id,
        one_time_code=latest_code(w.r.env, PEOPLE["alice"][2])))
    link = _link(w, envelope_id, "bob@example.com")
    bob_browser = Browser(w, "bob")
    html = bob_browser.get(link)[2]
    current = w.envelope(envelope_id).documents[0]
    status, _, code_page = bob_browser.post(f"{link}/code", {"document": doc.id, "sha256": current.current_sha256,
                                                             "csrf": _csrf(html)})
    assert status == 200, code_page[:600]
    code_id = re.search(rb'name="code_id" value="([^"]+)"', code_page)
    assert code_id
    status, _, done = bob_browser.post(f"{link}/sign", {
        "document": doc.id, "sha256": current.current_sha256, "csrf": _csrf(code_page),
        "code_id": code_id.group(1).decode(), "code": latest_code(w.r.env, PEOPLE["bob"][2])})
    assert status == 200 and b"Signed" in done
    assert w.envelope(envelope_id).state == pb.ENVELOPE_STATE_COMPLETED

    signed = w.call("dave", "GetDocument", pb.GetDocumentRequest(envelope_id=envelope_id, document_id=doc.id))
    widgets = _widgets(signed.content)
    page_a, rect_a = widgets[f"signet-{alice}"]
    page_b, rect_b = widgets[f"signet-{bob}"]
    assert page_a == 1 and _near(rect_a, [76, 56, 306, 126])
    assert page_b == 2 and _near(rect_b, [300, 440, 520, 500])


# -- form fields: added, moved and removed on the placement page ---------------------------------------------------
def _form_fields(env: Any) -> dict[str, tuple[str, int, int, float, float, float, float, bool]]:
    """Every form field by name: (person id, kind, page, x1, y1, x2, y2, required)."""
    return {f.name: (r.person_id, f.kind, f.page, f.x1, f.y1, f.x2, f.y2, f.required)
            for r in env.recipients for f in r.form_fields}


def _with_form_fields(env: Any, form: dict[str, str], **boxes: tuple[Any, ...]) -> dict[str, str]:
    """The placement form with each form field's numbers as they are, ``boxes`` (by field name) replacing some."""
    out = dict(form)
    for r in env.recipients:
        for f in r.form_fields:
            box = boxes.get(f.name, (f.page, f.x1, f.y1, f.x2, f.y2))
            out.update({f"ff-{f.name}_{k}": str(v) for k, v in zip(("page", "x1", "y1", "x2", "y2"), box, strict=True)})
    return out


def test_form_fields_are_added_and_removed_without_script_and_refusals_change_nothing(world: World) -> None:
    w = world
    title = "Placement Lease Cedar"
    env = w.call("dave", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title,
        recipients=[pb.RecipientSpec(person_id=w.ids["alice"], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=1,
                                     signing_method=pb.SIGNING_METHOD_REMOTE, field=FIELD),
                    pb.RecipientSpec(person_id=w.ids["bob"], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=2,
                                     signing_method=pb.SIGNING_METHOD_REMOTE, field=FIELD, form_fields=[
                                         pb.FormFieldSpec(name="bob_note", kind=pb.FORM_FIELD_KIND_TEXT, page=1,
                                                          x1=56, y1=600, x2=250, y2=620)]),
                    pb.RecipientSpec(person_id=w.ids["carol"], role=pb.RECIPIENT_ROLE_COPY, routing_order=3)],
        documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=w.pdf(title))])).envelope
    rid = {r.person_id: r.id for r in env.recipients}
    b = Browser(w, "dave")
    status, _, page = b.get(f"/s/env/{env.id}/place")
    assert status == 200 and b'data-form-field="bob_note"' in page and b'id="ff-bob_note_x1"' in page
    assert b'name="remove" value="bob_note"' in page and b'id="new_name"' in page
    assert f'<option value="{rid[w.ids["carol"]]}"'.encode() not in page  # only signers and approvers are offered
    csrf = _csrf(page)
    base = _with_form_fields(env, _form(env, csrf))
    before, sha = _form_fields(w.envelope(env.id)), env.documents[0].current_sha256

    def add(name: str, kind: str, person: str, **more: str) -> dict[str, str]:
        return {**base, "action": "add", "new_name": name, "new_kind": kind, "new_recipient": rid[w.ids[person]],
                **more}

    for form, words in ((add("carol_note", "text", "carol"), b"copy recipient"),  # a recipient who does not sign
                        (add("bob_note", "date", "alice"), b"named twice"),  # a name taken
                        (add("signet-x", "text", "alice"), b"signet-"),  # the signature fields' prefix
                        (add("", "text", "alice"), b"give the new form field a name"),
                        (add("radio_1", "radio", "alice"), b"text, date or checkbox"),
                        ({**_with_form_fields(env, base, bob_note=(1, 500, 600, 700, 620))},
                         b"inside page 1"),  # off the page's right edge
                        ({**_with_form_fields(env, base, bob_note=(3, 56, 600, 250, 620))}, b"page 3 is not a page")):
        status, headers, again = b.post(f"/s/env/{env.id}/place", form)
        assert status == 400 and b'role="alert"' in again and words in again, (form, again[:1500])
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        if form.get("new_name"):
            assert f'id="new_name" name="new_name" maxlength="64" value="{form["new_name"]}"'.encode() in again
        assert f'value="{form["ff-bob_note_x1"]}"'.encode() in again  # the form again, as typed
    current = w.envelope(env.id)
    assert _form_fields(current) == before and current.documents[0].current_sha256 == sha
    assert "placed" not in w.events(env.id)  # nothing changed

    # Alice's required checkbox added (a default box on page 1), then Bob's note removed: each one 'placed' event
    status, _, added = b.post(f"/s/env/{env.id}/place", add("alice_ok", "checkbox", "alice", new_required="yes"))
    assert status == 200 and b"Form field added" in added and b'data-form-field="alice_ok"' in added
    fields = _form_fields(w.envelope(env.id))
    person, kind, page_no, x1, y1, x2, y2, required = fields["alice_ok"]
    assert (person, kind, page_no, required) == (w.ids["alice"], pb.FORM_FIELD_KIND_CHECKBOX, 1, True)
    assert (x2 - x1, y2 - y1) == (36, 18) and 0 <= x1 and y2 <= A4_H and fields["bob_note"] == before["bob_note"]
    assert w.envelope(env.id).documents[0].current_sha256 != sha  # the PDF with the field placed
    later = w.envelope(env.id)
    status, _, removed = b.post(f"/s/env/{env.id}/place", {**_with_form_fields(later, _form(later, csrf)),
                                                           "remove": "bob_note"})
    assert status == 200 and b"Form field removed" in removed and b'data-form-field="bob_note"' not in removed
    assert set(_form_fields(w.envelope(env.id))) == {"alice_ok"} and w.events(env.id).count("placed") == 2


def test_in_a_browser_the_sender_adds_and_places_form_fields_and_the_signers_fill_them_there(
        world: World, chromium: Any) -> None:
    from formats.formfields import form_field_values

    w = world
    title = "Placement Lease Dogwood"
    with _draft_in_browser(w, chromium, title, "browser-form-fields.pdf") as (page, envelope_id, problems):
        rid = {r.person_id: r.id for r in w.envelope(envelope_id).recipients}
        alice, bob = rid[w.ids["alice"]], rid[w.ids["bob"]]

        # the add fieldset: a text field for Bob, then a required checkbox for Alice
        for name, kind, who, required in (("bob_note", "text", bob, False), ("alice_ok", "checkbox", alice, True)):
            page.fill("#new_name", name)
            page.select_option("#new_kind", kind)
            page.select_option("#new_recipient", who)
            if required:
                page.check("#new_required")
            page.click("button[value=add]")
            page.wait_for_selector(f'button.formbox:has-text("{name}")')
            assert "Form field added" in page.locator("[role=status]").first.inner_text()
        page.wait_for_load_state("networkidle")
        assert page.locator("button.formbox").count() == 2 and page.locator("button.sigbox").count() == 2
        assert "(text)" in page.locator("button.formbox", has_text="bob_note").inner_text()
        assert "(checkbox)" in page.locator("button.formbox", has_text="alice_ok").inner_text()

        def numbers(prefix: str) -> list[float]:
            return [float(page.input_value(f"#{prefix}_{k}")) for k in ("page", "x1", "y1", "x2", "y2")]

        note, tick = numbers("ff-bob_note"), numbers("ff-alice_ok")
        assert note[0] == tick[0] == 1

        # the mouse: Bob's text field onto page 2, its top-left corner at (300, 500) points
        _drag_to(page, page.locator("button.formbox", has_text="bob_note"), 2, 300, 500)
        width, height = note[3] - note[1], note[4] - note[2]
        assert _near(numbers("ff-bob_note"), [2, 300, 500 - height, 300 + width, 500])
        assert page.locator('.sheet[data-page="2"] button.formbox').count() == 1

        # the keyboard: Alice's checkbox 20 points left and 10 down, 10 wider and 10 taller; to page 2 and back
        _focus(page, "button.formbox", "alice_ok", limit=80)
        for key in ["ArrowLeft"] * 4 + ["ArrowDown"] * 2 + ["Shift+ArrowRight"] * 2 + ["Shift+ArrowDown"] * 2:
            page.keyboard.press(key)
        moved = [1, tick[1] - 20, tick[2] - 20, tick[3] - 10, tick[4] - 10]
        assert _near(numbers("ff-alice_ok"), moved, 0.01)
        page.keyboard.press("PageDown")
        assert numbers("ff-alice_ok")[0] == 2
        page.keyboard.press("PageUp")
        assert _near(numbers("ff-alice_ok"), moved, 0.01)
        assert "alice_ok: page 1" in page.locator("#place-status").inner_text()
        page.screenshot(path=str(ARTIFACTS / "13-form-fields.png"), full_page=True)
        assert _axe(page) == []

        web.save_and_send(page)
        assert problems == []  # nothing left the portal; no script error, no CSP refusal

    sent = w.envelope(envelope_id)
    assert sent.state == pb.ENVELOPE_STATE_SENT
    fields = _form_fields(sent)
    assert set(fields) == {"bob_note", "alice_ok"}
    assert fields["bob_note"][:3] == (w.ids["bob"], pb.FORM_FIELD_KIND_TEXT, 2) and not fields["bob_note"][7]
    assert _near(fields["bob_note"][3:7], [300, 500 - height, 300 + width, 500])
    assert fields["alice_ok"][:3] == (w.ids["alice"], pb.FORM_FIELD_KIND_CHECKBOX, 1) and fields["alice_ok"][7]
    assert _near(fields["alice_ok"][3:7], moved[1:])

    # both sign remotely through the API, filling their fields (the recipient's page has no form field inputs)
    doc = sent.documents[0]
    for name, values in (("alice", {"alice_ok": "yes"}), ("bob", {"bob_note": "Keys returned"})):
        current = w.envelope(envelope_id).documents[0].current_sha256 if name == "bob" else doc.current_sha256
        if name == "bob":
            _link(w, envelope_id, "bob@example.com")  # his turn has come (his notice is out)
        challenge = w.call(name, "StartSigning", pb.StartSigningRequest(
            envelope_id=envelope_id, document_id=doc.id, revision_sha256=current)).challenge
        w.call(name, "SignRemotely", pb.SignRemotelyRequest(
            envelope_id=envelope_id, document_id=doc.id, revision_sha256=current, code_id=challenge.code_id,
            one_time_code=latest_code(w.r.env, PEOPLE[name][2]), field_values=values))
    assert w.envelope(envelope_id).state == pb.ENVELOPE_STATE_COMPLETED

    signed = w.call("dave", "GetDocument", pb.GetDocumentRequest(envelope_id=envelope_id, document_id=doc.id))
    assert form_field_values(signed.content) == {"alice_ok": "yes", "bob_note": "Keys returned"}
    widgets = _widgets(signed.content)
    assert widgets["bob_note"][0] == 2 and _near(widgets["bob_note"][1], fields["bob_note"][3:7])
    assert widgets["alice_ok"][0] == 1 and _near(widgets["alice_ok"][1], fields["alice_ok"][3:7])
