"""Kiosk mode end to end: a real signet-server, a real signet-agent in kiosk mode with its own SoftHSM token
directory (the station's card reader), and Debian's chromium driven by Playwright on the station's pages.

Kim is enrolled on her own token (her card: key and certificate on it).  The card is "inserted" by copying the
token's directory into the station's token directory and "pulled" by deleting that copy.  Welcome page -> card in
-> the PIN page, nothing of Kim on it -> a wrong PIN (nothing opened) -> her PIN (the card signs the station's
statement, the server opens the card session with that proof) -> Kim's waiting envelope -> the rendered page and
its SHA-256 -> code to her phone -> a wrong PIN (nothing signed) -> code and PIN -> signed (the server says so;
pdfsig trusts the signature) -> card out -> the welcome page, nothing of Kim on it.  Then the idle timeout: the card
stays in, the station falls back to the welcome page by itself; a card pulled at the PIN page leaves nothing open.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signet.v1 import server_pb2
from tests.conftest import ROOT
from tests.pki import make_nssdb

from .agent_harness import AgentProcess, free_port
from .authz_cases import invoke, method_of
from .authz_world import enroll_in_process
from .browser import axe, chromium, tab_to
from .server_harness import admin, channel, latest_code, prc_id, register_verified, start_running

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KIM = ("Kim Station 金站", prc_id("19900101", "517"), "+8613900139201")
SAM = ("Sam Sender", prc_id("19850505", "226"), "+8613900139202")
IDLE = 25  # long enough for the main test's steps (axe-core runs between them) on a loaded machine
PIN_PAGE = "Enter your card PIN to open your documents"
OPEN = "Open my documents 打开我的文件"


def _token_dir(softhsm_dir: Path, serial: str) -> Path:
    """The SoftHSM directory of the token with ``serial`` (its token.object names it)."""
    for d in (softhsm_dir / "tokens").iterdir():
        obj = d / "token.object"
        if obj.exists() and serial.encode() in obj.read_bytes():
            return d
    raise AssertionError(f"no token directory for serial {serial}")


@pytest.fixture(scope="module")
def world(make_token, softhsm_dir, tmp_path_factory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("kiosk")
    tok = make_token("kiosk-srv")
    r = start_running(base / "server", tok.label, tok.pin)
    kiosk: AgentProcess | None = None
    try:
        with channel(r.env, r.op_a) as op:
            kim = register_verified(r, op, *KIM, "kim@example.com")
            sam = register_verified(r, op, *SAM, "sam@example.com")
        card = make_token("kim-card")
        kim_enrolled = enroll_in_process(r, kim, KIM[2], card, base / "kim-agent")
        sam_enrolled = enroll_in_process(r, sam, SAM[2], make_token("sam"), base / "sam-agent")
        station = base / "station"
        admin(r.env, "station-cert", "issue", r.org_a, "lobby-1", "--out", str(station), "--api", r.env.api)
        # the station's card reader: a token directory of its own, empty until a card goes in
        reader = base / "reader"
        reader.mkdir(mode=0o700)
        conf = base / "reader-softhsm2.conf"
        conf.write_text((ROOT / "softhsm-config" / "softhsm2.conf.in").read_text().replace("@TOKENDIR@", str(reader)))
        port = free_port()
        # the tests here give the card's PIN about ten times in two minutes (default: 5 tries a minute)
        kiosk = AgentProcess(base / "kiosk", f'[kiosk]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
                             f'idle_seconds = {IDLE}\nstation_dir = "{station}"\n\n'
                             "[unlock]\npin_tries_per_minute = 30\n",
                             agent_settings=f'timestamp_urls = ["{r.env.pki_url}/tsa"]',
                             env={"SOFTHSM2_CONF": str(conf)}).start()
        yield {"r": r, "kim": kim, "sam": sam, "card": card, "card_dir": _token_dir(softhsm_dir, card.serial),
               "reader": reader, "url": f"http://127.0.0.1:{port}", "sam_agent": sam_enrolled.agent,
               "kim_enrolled": kim_enrolled, "kiosk": kiosk, "base": base}
    finally:
        if kiosk is not None:
            kiosk.stop()
        r.server.stop()


def _send_to_kim(w: dict[str, Any], title: str) -> Any:
    from formats.samplepdf import contract_pdf_bytes

    with channel(w["r"].env, w["sam_agent"]) as ch:
        draft = invoke(ch, method_of(server_pb2.DESCRIPTOR, "EnvelopeService.CreateEnvelope"),
                       server_pb2.CreateEnvelopeRequest(
                           title=title, documents=[server_pb2.DocumentSpec(
                               name="lease.pdf", media_type="application/pdf",
                               content=contract_pdf_bytes(title, ["Sam Sender", "Kim Station"]))],
                           recipients=[server_pb2.RecipientSpec(
                               person_id=w["kim"], role=server_pb2.RECIPIENT_ROLE_SIGNER, routing_order=1,
                               signing_method=server_pb2.SIGNING_METHOD_TOKEN)])).envelope
        return invoke(ch, method_of(server_pb2.DESCRIPTOR, "EnvelopeService.SendEnvelope"),
                      server_pb2.SendEnvelopeRequest(envelope_id=draft.id)).envelope


def _as_operator(w: dict[str, Any], rpc: str, request: Any) -> Any:
    with channel(w["r"].env, w["r"].op_a) as ch:
        return invoke(ch, method_of(server_pb2.DESCRIPTOR, rpc), request)


def _post(w: dict[str, Any], path: str, body: bytes) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(w["url"] + path, data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _get(w: dict[str, Any], path: str) -> tuple[int, str]:
    """(status, Location) of one GET, redirects not followed (a held page is not waited for)."""
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(str(urlsplit(w["url"]).hostname), urlsplit(w["url"]).port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Location") or ""
    finally:
        conn.close()


def _insert(w: dict[str, Any]) -> None:
    shutil.copytree(w["card_dir"], w["reader"] / w["card_dir"].name)


def _pull(w: dict[str, Any]) -> None:
    shutil.rmtree(w["reader"] / w["card_dir"].name)


@pytest.fixture(scope="module")
def browser(world) -> Iterator[Any]:
    with chromium() as b:
        yield b


def _content(page: Any) -> str:
    """The page's HTML; the welcome page reloads itself every second, so a read may meet a navigation: read again."""
    from playwright.sync_api import Error

    for _ in range(50):
        try:
            return str(page.content())
        except Error as e:
            if "navigating" not in str(e):
                raise
            time.sleep(0.1)
    raise AssertionError("the page never stopped navigating")


def _shot(page: Any, name: str) -> None:
    out = ROOT / "tests" / "artifacts" / "kiosk"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"))


def test_card_in_review_sign_card_out(world, browser):
    from playwright.sync_api import expect

    env = _send_to_kim(world, "Kiosk lease")
    [doc] = env.documents
    ctx = browser.new_context(bypass_csp=True)  # axe-core is injected into pages that allow no script
    page = ctx.new_page()
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(world["url"] + "/", wait_until="commit")
    expect(page.get_by_role("heading", name="Insert your card")).to_be_visible(timeout=20_000)
    _shot(page, "1-welcome")

    _insert(world)
    expect(page.get_by_role("heading", name=PIN_PAGE)).to_be_visible(timeout=30_000)
    assert "Kim" not in _content(page) and "Kiosk lease" not in _content(page)  # nothing of hers before the PIN
    _shot(page, "2-pin")
    assert axe(page) == []
    assert _get(world, "/inbox") == (303, "/")  # no session yet: her documents are not reachable

    # a wrong PIN: the card does not sign the statement, nothing is opened
    page.get_by_label("Card PIN 卡密码").fill("wrong-pin-0")
    page.get_by_role("button", name=OPEN).click()
    expect(page.get_by_role("alert")).to_contain_text("did not accept the PIN", timeout=30_000)
    _shot(page, "3-wrong-pin")
    html = _content(page)
    assert "wrong-pin-0" not in html and "Kim" not in html and "Kiosk lease" not in html
    expect(page.get_by_role("heading", name=PIN_PAGE)).to_be_visible()
    assert _get(world, "/inbox") == (303, "/") and _get(world, "/") == (303, "/unlock")
    log = world["kiosk"].log()
    assert "did not sign its statement (PIN_INCORRECT)" in log and "card session opened" not in log
    assert _post(world, "/unlock", b"csrf=forged&pin=" + world["card"].pin.encode()) == 403  # CSRF on the PIN form
    assert "card session opened" not in world["kiosk"].log()

    page.get_by_label("Card PIN 卡密码").fill(world["card"].pin)
    page.get_by_role("button", name=OPEN).click()
    expect(page.get_by_role("heading", name="Welcome, Kim Station 金站")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Kiosk lease")).to_be_visible()
    _shot(page, "4-inbox")
    assert axe(page) == []
    assert "card session opened" in world["kiosk"].log()
    assert _post(world, "/finish", b"csrf=forged") == 403  # a form without the session's CSRF token
    assert _post(world, "/finish", b"") == 403
    expect(page.get_by_text("Kiosk lease")).to_be_visible()  # the session goes on

    tab_to(page, "Review lease.pdf")  # the keyboard alone reaches everything on the station
    page.keyboard.press("Enter")
    expect(page.get_by_text(doc.current_sha256)).to_be_visible(timeout=20_000)
    img = page.get_by_role("img", name="Page 1 of lease.pdf")
    expect(img).to_be_visible()
    page.wait_for_function("() => document.querySelector('img.page').naturalWidth > 100", timeout=20_000)
    _shot(page, "5-review")
    assert axe(page) == []

    page.get_by_role("button", name="Sign this document 签署此文件").click()
    expect(page.get_by_label("One-time code 验证码")).to_be_visible(timeout=20_000)
    assert axe(page) == []
    code = latest_code(world["r"].env, KIM[2])
    page.get_by_label("One-time code 验证码").fill(code)
    page.get_by_label("Card PIN 卡密码").fill("wrong-pin-0")
    page.get_by_role("button", name="Sign 签署").click()
    expect(page.get_by_role("alert")).to_contain_text("did not accept the PIN", timeout=30_000)
    got = _as_operator(world, "EnvelopeService.GetEnvelope", server_pb2.GetEnvelopeRequest(envelope_id=env.id))
    assert got.envelope.recipients[0].state != server_pb2.RECIPIENT_STATE_SIGNED  # nothing signed
    assert "wrong-pin-0" not in _content(page)  # never echoed

    page.get_by_label("One-time code 验证码").fill(code)
    page.get_by_label("Card PIN 卡密码").fill(world["card"].pin)
    page.get_by_role("button", name="Sign 签署").click()
    expect(page.get_by_role("heading", name="Signed 已签署")).to_be_visible(timeout=60_000)
    _shot(page, "6-signed")
    assert axe(page) == []
    got = _as_operator(world, "EnvelopeService.GetEnvelope", server_pb2.GetEnvelopeRequest(envelope_id=env.id))
    assert got.envelope.recipients[0].state == server_pb2.RECIPIENT_STATE_SIGNED
    assert got.envelope.state == server_pb2.ENVELOPE_STATE_COMPLETED
    content = _as_operator(world, "EnvelopeService.GetDocument", server_pb2.GetDocumentRequest(
        envelope_id=env.id, document_id=doc.id)).content
    signed = world["base"] / "signed.pdf"
    signed.write_bytes(content)
    nss = make_nssdb(world["base"] / "nss", world["r"].env.signing_root.read_bytes())
    text = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(signed)], capture_output=True, text=True,
                          check=False).stdout
    assert "Signature is Valid." in text and "Certificate is Trusted." in text and "Total document signed" in text

    _pull(world)
    expect(page.get_by_role("heading", name="Insert your card")).to_be_visible(timeout=30_000)
    html = _content(page)
    assert "Kim" not in html and "Kiosk lease" not in html and doc.current_sha256 not in html
    _shot(page, "7-card-out")
    assert all(u.startswith(world["url"]) for u in requests), [u for u in requests if not u.startswith(world["url"])]
    log = world["kiosk"].log()
    assert world["card"].pin not in log and "wrong-pin-0" not in log and code not in log
    ctx.close()


def test_idle_station_returns_to_the_welcome_page(world, browser):
    from playwright.sync_api import expect

    _send_to_kim(world, "Idle lease")
    page = browser.new_page()
    page.goto(world["url"] + "/", wait_until="commit")
    expect(page.get_by_role("heading", name="Insert your card")).to_be_visible(timeout=20_000)
    _insert(world)
    try:
        _open_with_pin(world, page)
        t0 = time.monotonic()
        # nobody touches the station: after idle_seconds the page goes back to the welcome page by itself
        expect(page.get_by_role("heading", name="Insert your card")).to_be_visible(timeout=(IDLE + 20) * 1000)
        assert time.monotonic() - t0 >= IDLE - 1
        expect(page.get_by_role("status")).to_contain_text("take your card out")
        assert "Kim" not in _content(page) and "Idle lease" not in _content(page)
        time.sleep(2)  # the card still in does not open a new session by itself
        assert "Kim" not in _content(page)
    finally:
        _pull(world)
    expect(page.get_by_role("status")).to_have_count(0, timeout=20_000)
    for pin in (True, False):  # the card comes back, and again: noticed each time (the page asks every second)
        _insert(world)
        if pin:
            _open_with_pin(world, page)
        else:  # pulled at the PIN page: back to the welcome page, nothing opened
            expect(page.get_by_role("heading", name=PIN_PAGE)).to_be_visible(timeout=30_000)
        _pull(world)
        expect(page.get_by_role("heading", name="Insert your card")).to_be_visible(timeout=30_000)
        assert _get(world, "/") == (200, "") and _get(world, "/inbox") == (303, "/")
    page.close()


def _open_with_pin(world: dict[str, Any], page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name=PIN_PAGE)).to_be_visible(timeout=30_000)
    page.get_by_label("Card PIN 卡密码").fill(world["card"].pin)
    page.get_by_role("button", name=OPEN).click()
    expect(page.get_by_role("heading", name="Welcome, Kim Station 金站")).to_be_visible(timeout=30_000)


def test_the_station_refuses_requests_for_another_host(world):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(world["url"] + "/", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 421
