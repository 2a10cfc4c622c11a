"""The portal's signed-in pages: senders under ``/s`` (people, with their own certificate or their agent's), operators
under ``/o`` — called by :mod:`.web`'s dispatcher for those paths.

- Sign-in is the TLS client certificate (requested, optional, verified against the TLS CA by the listener), mapped
  to a principal by the same rules as the gRPC API (:meth:`server.api.auth.Authenticator.principal_of`): no
  password anywhere.  Without one the pages answer 401; a revoked or unknown one 401 with why; a member or
  agent under ``/o``, or an operator under ``/s``, 403.
- Every action is the service call the gRPC API makes (EnvelopeService, IdentityService, Contracts) with that
  principal, so authorisation is identical: another organisation's envelope is "not found".
- The security of :mod:`.web` holds: no script, its headers -- but for a draft's placement page
  (``/s/env/<id>/place``), whose Content-Security-Policy adds ``script-src 'self'`` for the portal's one script,
  ``/s/place.js`` (``static/place.js``: dragging signature boxes and form fields; its numeric fields work without
  it); a session
  cookie (``Secure; HttpOnly; SameSite=Strict``, ``Path=/s`` or ``/o``); every POST carries a CSRF token, an
  HMAC of the principal and that session, compared as bytes.  Creating and sending are idempotent under a random
  id of the form shown, so a double submit acts once.  Nothing here logs a name, a reason, a document or a query.
- After the create form, the sender reaches the draft's placement step: its pages rendered like a recipient's, and
  each signer's box and each form field's as numbers (what is saved, together:
  :meth:`~server.envelopes.EnvelopeService.update_fields`, the sender only, a draft only, each box inside its page,
  form fields with the rules of create); form fields are added (name, kind, the signer or approver filling it,
  required; a default box on page 1) and removed by the same form's buttons; the script draws the boxes to drag and
  move with the keyboard.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import replace
from functools import cache
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from ..envelopes import FormField, FormFieldKind, SignatureField
from ..envelopes.drafting import MIN_FIELD_HEIGHT, MIN_FIELD_WIDTH
from ..errors import InvalidArgument, ServerError, Unauthenticated
from ..identity import Principal
from ..identity.model import Status
from ..identity.principal import Role
from . import console_pages as html
from . import upload
from .web import _STATUS, HEADERS, MAX_PAGES, _Refused, render_page

if TYPE_CHECKING:
    from .web import _Handler

SESSION = "signet_console"
MAX_UPLOAD_SLACK = 256 * 1024  # the create form around its document
_ID = r"([A-Za-z0-9_-]{1,80})"
MAX_PLACE_FORM = 256 * 1024  # the placement form: five numbers per signer and approver and per form field
MAX_PLACE_FIELDS = 2000
FORM_BOX = {FormFieldKind.TEXT: (180, 24), FormFieldKind.DATE: (100, 24), FormFieldKind.CHECKBOX: (36, 18)}  # points
PLACE_SCRIPT = "/s/place.js"


@cache
def place_script() -> bytes:
    """The portal's only script (``static/place.js``), served by the portal itself."""
    return (Path(__file__).parent / "static" / "place.js").read_bytes()


class _Ctx:
    def __init__(self, h: _Handler, area: str, p: Principal) -> None:
        self.h, self.area, self.p = h, area, p
        self.srv = h.server
        self.session = self._cookie()
        self.new_session = not self.session
        if self.new_session:
            self.session = secrets.token_hex(16)

    def _cookie(self) -> str:
        try:
            morsel = SimpleCookie(self.h.headers.get("Cookie", "")).get(SESSION)
        except CookieError:  # a malformed Cookie header is no session, never a 500
            return ""
        return morsel.value if morsel is not None and re.fullmatch(r"[0-9a-f]{32}", morsel.value) else ""

    @property
    def csrf(self) -> str:
        p = self.p
        return self.srv.csrf(f"console:{self.area}:{p.org_id}:{p.role.value}:{p.subject}", self.session)

    def check_csrf(self, form: dict[str, str]) -> None:
        # compared as bytes: compare_digest refuses str with non-ASCII characters (fuzz finding F20)
        if self.new_session or not hmac.compare_digest(form.get("csrf", "").encode(), self.csrf.encode()):
            raise _Refused(403, "this form has expired: reload the page and repeat")

    def page(self, body: bytes, status: int = 200, *, script: bool = False) -> None:
        headers = {}
        if script:  # the placement page only: the portal's own script, nothing else
            csp = self.srv.headers.get("Content-Security-Policy", HEADERS["Content-Security-Policy"])
            headers["Content-Security-Policy"] = f"{csp}; script-src 'self'"
        if self.new_session:
            headers["Set-Cookie"] = (f"{SESSION}={self.session}; Path=/{self.area}; Secure; HttpOnly; "
                                     f"SameSite=Strict; Max-Age={self.srv.session_seconds}")
        self.h._send(status, body, headers=headers)

    def file(self, content: bytes, media_type: str, name: str) -> None:
        self.h._send(200, content, media_type, {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})

    def query(self) -> dict[str, str]:
        raw = self.h.path.split("?", 1)[1] if "?" in self.h.path else ""
        return {k: v[0] for k, v in parse_qs(raw, max_num_fields=5).items()}


def route(h: _Handler, path: str) -> None:
    """Answer a request under ``/s`` or ``/o`` (the hook in :mod:`.web`'s dispatcher)."""
    area = path[1]
    if path == f"/{area}/console.css" and h.command == "GET":
        h._send(200, html.CONSOLE_CSS, "text/css; charset=utf-8")
        return
    if path == PLACE_SCRIPT and h.command == "GET":
        h._send(200, place_script(), "text/javascript; charset=utf-8")
        return
    if path in ("/s", "/o"):
        h._redirect(f"{path}/")
        return
    srv = h.server
    der = h.client_certificate()
    if der is None or getattr(srv, "authenticator", None) is None:
        h._send(401, html.sign_in(area, 401, "No client certificate was presented: these pages need the one "
                                             "Signet issued to you."))
        return
    try:
        p = srv.authenticator.principal_of(der)
    except Unauthenticated as e:
        why = ("This client certificate is revoked: ask an operator of your organisation for a new one."
               if e.reason == "CLIENT_CERT_REVOKED" else f"This client certificate is not accepted: {e.message}.")
        h._send(401, html.sign_in(area, 401, why))
        return
    if not (p.is_operator if area == "o" else p.role in (Role.MEMBER, Role.AGENT)):  # a station: neither
        why = ("Only an operator of the organisation may use these pages." if area == "o" else
               "These pages are for people who send envelopes; an operator uses /o/.")
        h._send(403, html.sign_in(area, 403, why))
        return
    ctx = _Ctx(h, area, p)
    try:
        (_sender if area == "s" else _operator)(ctx, path[2:])
    except ServerError as e:
        status = next((s for t, s in _STATUS.items() if isinstance(e, t)), 400)
        ctx.page(html.problem(area, status, e.message, p), status)


# -- senders -------------------------------------------------------------------------------------------------------
def _sender(c: _Ctx, rest: str) -> None:
    env_svc, p, get = c.srv.envelopes, c.p, c.h.command == "GET"
    if get and rest == "/":
        listed = env_svc.list_envelopes(p, "sent", page_size=50, page_token=c.query().get("page", ""))
        c.page(html.envelope_list(p, listed.envelopes, listed.next_page_token))
        return
    if rest == "/new":
        if get:
            c.page(html.create_form(p, c.csrf, secrets.token_hex(16), {}, max_mb=_max_mb(c)))
        else:
            _create(c)
        return
    _on_envelope(c, rest)


def _on_envelope(c: _Ctx, rest: str) -> None:
    """``/s/env/<id>`` and what is under it."""
    env_svc, p, get = c.srv.envelopes, c.p, c.h.command == "GET"
    m = re.fullmatch(rf"/env/{_ID}(/doc/{_ID}(/page/(\d{{1,4}})\.png)?|/evidence|/send|/void|/place)?", rest)
    if m is None:
        raise _Refused(404, "there is nothing here")
    envelope_id, action = m.group(1), m.group(2) or ""
    if get and action == "":
        _envelope_page(c, envelope_id)
    elif action == "/place" and get:
        _place(c, envelope_id)
    elif action == "/place":
        _save_placement(c, envelope_id)
    elif get and m.group(5) is not None:  # /doc/<id>/page/<n>.png
        _page_image(c, envelope_id, m.group(3), int(m.group(5)))
    elif get and action.startswith("/doc/"):
        got = env_svc.get_document(p, envelope_id, m.group(3))
        c.file(got.content, got.document.media_type, got.document.name)
    elif get and action == "/evidence":
        bundle = c.srv.contracts.export_evidence(p, envelope_id)
        c.file(bundle.data, "application/zip", f"evidence-{envelope_id}.zip")
    elif not get and action in ("/send", "/void"):
        form = c.h._form()
        c.check_csrf(form)
        key = f"portal-{action[1:]}-{form.get('form_id', '')[:64]}"
        if action == "/send":
            env_svc.send(p, envelope_id, idempotency_key=key)
        else:
            env_svc.void(p, envelope_id, form.get("reason", ""), idempotency_key=key)
        c.h._redirect(f"/s/env/{envelope_id}?done={action[1:]}")
    else:
        raise _Refused(404, "there is nothing here")


def _envelope_page(c: _Ctx, envelope_id: str) -> None:
    env = c.srv.envelopes.get(c.p, envelope_id)
    if env.sender_person_id != c.p.subject:  # addressed to this person: their link's pages are for that
        raise _Refused(404, "there is no envelope you sent with this id")
    events = c.srv.envelopes.list_events(c.p, envelope_id, page_size=200)
    done = {"send": "Sent. 已发送。", "void": "Voided. 已作废。", "create": "Draft created: check it, then Send. "
            "草稿已创建。", "placed": "Signature boxes saved, and the form fields: check the envelope, then Send. "
            "签名位置与表单字段已保存。"}.get(c.query().get("done", ""), "")
    c.page(html.envelope(c.p, env, events, c.csrf, secrets.token_hex(16), ok=done))


def _mine(c: _Ctx, envelope_id: str) -> Any:
    """The envelope, when the signed-in person sent it (a recipient's pages are their link's)."""
    env = c.srv.envelopes.get(c.p, envelope_id)
    if env.sender_person_id != c.p.subject:
        raise _Refused(404, "there is no envelope you sent with this id")
    return env


def _page_image(c: _Ctx, envelope_id: str, document_id: str, page: int) -> None:
    _mine(c, envelope_id)
    got = c.srv.envelopes.get_document(c.p, envelope_id, document_id)
    if not got.document.is_pdf or not 1 <= page <= min(got.document.pages, MAX_PAGES):
        raise _Refused(404, "there is no such page")
    c.h._send(200, render_page(got.content, page), "image/png")


def _placeable(env: Any) -> bool:
    return any(d.is_pdf for d in env.documents) and any(r.signs for r in env.recipients)


def _place(c: _Ctx, envelope_id: str, values: dict[str, str] | None = None, message: str = "") -> None:
    """The placement step of a draft (GET, or the form again with what is wrong)."""
    from formats.errors import InvalidDocument
    from formats.pageboxes import page_boxes

    env = _mine(c, envelope_id)
    if str(env.state) != "draft":
        raise _Refused(409, "this envelope is no longer a draft: its signature boxes cannot be moved")
    if not _placeable(env):
        raise _Refused(404, "this envelope has no PDF or no one who signs: there is no signature box to place")
    pdfs = [d for d in env.documents if d.is_pdf]
    got = c.srv.envelopes.get_document(c.p, envelope_id, pdfs[0].id)
    try:
        boxes = page_boxes(got.content, "the document")
    except InvalidDocument:
        raise _Refused(422, "the pages of this document cannot be shown") from None
    boxes = boxes[:min(MAX_PAGES, *(d.pages for d in pdfs))]
    ok = {"create": "Draft created: place the signature boxes (and add form fields), then Save. 草稿已创建。",
          "added": "Form field added on page 1: move it to its place, then Save. 表单字段已添加。",
          "removed": "Form field removed. 表单字段已删除。"}.get(c.query().get("done", ""), "") \
        if values is None else ""
    c.page(html.placement(c.p, env, pdfs[0], boxes, c.csrf, values or {}, min_size=(MIN_FIELD_WIDTH, MIN_FIELD_HEIGHT),
                          message=message, ok=ok), 400 if message else 200, script=True)


def _place_form(h: _Handler) -> dict[str, str]:
    """The placement form (URL-encoded): larger than the other forms, five numbers per signer and approver and per
    form field."""
    try:
        length = int(h.headers.get("Content-Length") or 0)
    except ValueError:
        raise _Refused(400, "the request has no valid length") from None
    if length > MAX_PLACE_FORM:
        h.close_connection = True
        raise _Refused(413, "the request is too large")
    raw = h.rfile.read(length) if length > 0 else b""
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_PLACE_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "the form cannot be read") from None
    return {k: v[0] for k, v in parsed.items()}


def _save_placement(c: _Ctx, envelope_id: str) -> None:
    """Save the placement form: every signature box and form field as numbered, less a form field whose Remove
    button was pressed, plus the one the add fieldset names (with Add pressed, or Enter in it) on page 1; one call
    of :meth:`~server.envelopes.EnvelopeService.update_fields`, so one ``placed`` event or nothing."""
    form = _place_form(c.h)
    c.check_csrf(form)
    env = _mine(c, envelope_id)
    fields: dict[str, SignatureField] = {}
    removed = form.get("remove", "")
    adding = form.get("action") == "add" or bool(form.get("new_name", "").strip())
    try:
        signing = [r for r in env.recipients if r.signs]
        for r in signing:
            if f"{r.id}_page" in form:
                fields[r.id] = _box(form, r.id, r.legal_name)
        form_fields: dict[str, list[FormField]] = {r.id: [] for r in signing}
        for r in signing:
            for f in r.form_fields:
                if f.name == removed:
                    continue
                if f"ff-{f.name}_page" in form:
                    b = _box(form, f"ff-{f.name}", f"form field {f.name!r}")
                    f = replace(f, page=b.page, x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2)  # noqa: PLW2901 - as placed
                form_fields[r.id].append(f)
        if adding:
            rid, new = _new_form_field(c, env, form, sum(len(v) for v in form_fields.values()))
            form_fields.setdefault(rid, []).append(new)
        c.srv.envelopes.update_fields(c.p, envelope_id, fields,
                                      form_fields={k: tuple(v) for k, v in form_fields.items()})
    except InvalidArgument as e:  # the form again, as filled in, with what is wrong; nothing saved
        _place(c, envelope_id, {k: v for k, v in form.items() if k not in ("csrf", "remove", "action")}, e.message)
        return
    if adding or removed:  # back to the pages: to place the new field, or to see one gone
        c.h._redirect(f"/s/env/{envelope_id}/place?done={'added' if adding else 'removed'}")
        return
    c.h._redirect(f"/s/env/{envelope_id}?done=placed")


def _new_form_field(c: _Ctx, env: Any, form: dict[str, str], count: int) -> tuple[str, FormField]:
    """The form field the add fieldset names (recipient id, field), its box by default on page 1 of the first PDF:
    on the right half, below those added before (the service checks the rest as at create)."""
    from formats.errors import InvalidDocument
    from formats.pageboxes import page_boxes

    name = form.get("new_name", "").strip()
    if not name:
        raise InvalidArgument("give the new form field a name (a letter, then letters, digits, '_' or '-')",
                              reason="FORM_FIELD_INVALID")
    try:
        kind = FormFieldKind(form.get("new_kind", ""))
    except ValueError:
        raise InvalidArgument("a form field is text, date or checkbox", reason="FORM_FIELD_INVALID") from None
    rid = form.get("new_recipient", "")
    pdf = next((d for d in env.documents if d.is_pdf), None)
    if pdf is None:
        raise InvalidArgument("form fields need a PDF document", reason="FORM_FIELD_INVALID")
    try:
        page = page_boxes(c.srv.envelopes.get_document(c.p, env.id, pdf.id).content, "the document")[0]
    except InvalidDocument:
        raise _Refused(422, "the pages of this document cannot be shown") from None
    width, height = FORM_BOX[kind]
    x1 = max(page.x0, min(page.x0 + page.width * 0.55, page.x1 - width - 10))
    top = page.y1 - 60 - (count % 12) * (height + 12)
    y1 = max(page.y0, top - height)
    return rid, FormField(name, kind, 1, round(x1, 2), round(y1, 2), round(x1 + width, 2), round(y1 + height, 2),
                          form.get("new_required", "") == "yes")


def _box(form: dict[str, str], rid: str, name: str) -> SignatureField:
    try:
        page = int(form.get(f"{rid}_page", "").strip())
        x1, y1, x2, y2 = (float(form.get(f"{rid}_{k}", "").strip()) for k in ("x1", "y1", "x2", "y2"))
    except ValueError:
        raise InvalidArgument(f"{name}'s box: the page is a whole number and the coordinates are numbers (points)",
                              reason="FORM_INVALID") from None
    if not 0 < page <= 100_000:
        raise InvalidArgument(f"{name}'s box: page {page} does not exist", reason="FIELD_INVALID")
    return SignatureField(page, x1, y1, x2, y2)


def _max_mb(c: _Ctx) -> int:
    return max(1, int(c.srv.envelopes.limits.max_document_bytes) // (1024 * 1024))


def _create(c: _Ctx) -> None:
    h = c.h
    try:
        length = int(h.headers.get("Content-Length") or 0)
    except ValueError:
        raise _Refused(400, "the request has no valid length") from None
    if not 0 < length <= c.srv.envelopes.limits.max_document_bytes + MAX_UPLOAD_SLACK:
        h.close_connection = True
        raise _Refused(413, f"the form is too large: one PDF of at most {_max_mb(c)} MiB")
    body = h.rfile.read(length)
    up = upload.parse(h.headers.get("Content-Type", ""), body)
    c.check_csrf(up.fields)
    form_id = up.fields.get("form_id", "")
    if not re.fullmatch(r"[0-9a-f]{32}", form_id):
        raise _Refused(400, "this form is not one the portal gave out: reload it")
    f = up.fields
    try:
        expires = int(f.get("expires", "0").strip() or 0)
        env = c.srv.envelopes.create(
            c.p, title=f.get("title", ""), message=f.get("message", ""), documents=[upload.document(up)],
            recipients=upload.recipients(f), expires_in_days=expires, idempotency_key=f"portal-create-{form_id}")
    except (ServerError, ValueError) as e:  # the form again, as filled in, with what is wrong
        message = e.message if isinstance(e, ServerError) else "expiry days must be a whole number"
        c.page(html.create_form(c.p, c.csrf, form_id, f, message=message, max_mb=_max_mb(c)), 400)
        return
    h._redirect(f"/s/env/{env.id}/place?done=create" if _placeable(env) else f"/s/env/{env.id}?done=create")


# -- operators -----------------------------------------------------------------------------------------------------
def _operator(c: _Ctx, rest: str) -> None:
    p, get = c.p, c.h.command == "GET"
    if get and rest == "/":
        done = {"approved": "Approved. 已批准。", "rejected": "Rejected. 已拒绝。"}.get(c.query().get("done", ""), "")
        c.page(html.operator_home(p, c.srv.identity.list_people(p, Status.PENDING), c.csrf, ok=done))
        return
    if not get and rest == "/search":
        form = c.h._form()
        c.check_csrf(form)
        query = form.get("q", "").strip()
        found = c.srv.contracts.search(p, query, page_token=form.get("page_token", ""))
        c.page(html.search_results(p, query, found, c.csrf))
        return
    m = re.fullmatch(rf"/person/{_ID}/(approve|reject)", rest)
    if m is not None and not get:
        form = c.h._form()
        c.check_csrf(form)
        if m.group(2) == "approve":
            c.srv.identity.approve(p, m.group(1), evidence=form.get("evidence", ""),
                                   reference=form.get("reference", ""))
        else:
            c.srv.identity.reject(p, m.group(1), reason=form.get("reason", ""), reference=form.get("reference", ""))
        c.h._redirect(f"/o/?done={m.group(2).rstrip('e')}ed")
        return
    m = re.fullmatch(rf"/contract/{_ID}(/evidence|/file/(\d{{1,3}}))?", rest)
    if m is None or not get:
        raise _Refused(404, "there is nothing here")
    envelope_id = m.group(1)
    if m.group(2) == "/evidence":
        bundle = c.srv.contracts.export_evidence(p, envelope_id)
        c.file(bundle.data, "application/zip", f"evidence-{envelope_id}.zip")
        return
    summary, files = c.srv.contracts.get(p, envelope_id)
    if m.group(3) is None:
        c.page(html.contract(p, summary, files))
        return
    n = int(m.group(3))
    if n >= len(files):
        raise _Refused(404, "there is no such file")
    f, data = c.srv.contracts.download(p, envelope_id, files[n].name)
    c.file(data, "application/pdf" if f.name.lower().endswith(".pdf") else "application/octet-stream", f.name)
