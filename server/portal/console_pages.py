"""HTML of the portal's signed-in pages for senders (``/s``) and operators (``/o``), built on :mod:`.pages` (its page
frame, forms and stylesheet, plus :data:`CONSOLE_CSS`).  Every value is escaped here.  Script-free, but for the
placement page (:func:`placement`), which loads the portal's one script, ``/s/place.js`` (``static/place.js``), as
progressive enhancement: its numeric fields work without it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from . import pages

CONSOLE_CSS = b"""nav{margin:0 0 1rem}nav a{margin-right:1rem}
td,th{overflow-wrap:anywhere}
fieldset{border:1px solid #ccd;border-radius:6px;margin:.75rem 0;padding:.5rem 1rem}
legend{font-weight:600}
input[type=number]{width:6rem;font-size:1rem;padding:.3rem}select,textarea{font-size:1rem;padding:.3rem}
textarea{width:100%;box-sizing:border-box}input[type=text].wide{width:100%;box-sizing:border-box}
select:focus,textarea:focus{outline:3px solid #f59e0b;outline-offset:2px}
.row{display:flex;flex-wrap:wrap;gap:0 1rem}.row>div{min-width:6rem}
.actions{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-end}
.sheet{position:relative;display:inline-block;max-width:100%;margin:0 0 1rem}.sheet img.page{margin:0;height:auto}
.sheet figcaption{font-size:.9rem;margin:.25rem 0}
button.sigbox,button.formbox{position:absolute;box-sizing:border-box;margin:0;padding:0;border:2px solid #1a4ed8;
border-radius:0;background:rgba(26,78,216,.1);color:#111;font-size:.8rem;text-align:left;cursor:move;touch-action:none;
display:flex;align-items:flex-start;overflow:visible;user-select:none}
button.sigbox[hidden],button.formbox[hidden]{display:none}
button.sigbox .name,button.formbox .name{background:#1a4ed8;color:#fff;padding:.1rem .3rem;white-space:nowrap}
button.sigbox .grip,button.formbox .grip{position:absolute;right:-7px;bottom:-7px;width:12px;height:12px;
background:#1a4ed8;border:2px solid #fff;cursor:nwse-resize}
button.formbox{border:2px dashed #047857;background:rgba(4,120,87,.1)}
button.formbox .name{background:#047857;position:absolute;left:-2px;bottom:100%}
button.formbox .grip{background:#047857}
button.sigbox:focus,button.formbox:focus{outline:3px solid #b45309;outline-offset:1px}
"""
ROLES = ("signer", "approver", "copy")
METHODS = ("token", "remote")
ROWS = 4  # recipient rows on the create form; rows left without a person are ignored
FIELD_DEFAULTS = {"page": "1", "x1": "56", "y1": "56", "x2": "276", "y2": "116"}


def utc(at: datetime | None) -> str:
    """A time in UTC with milliseconds (the event timeline's unit), or a dash."""
    if at is None:
        return "—"
    t = at.astimezone(UTC)
    return f"<time datetime=\"{t.isoformat()}\">{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} UTC</time>"


def _page(area: str, title: str, body: str, *, who: Any = None) -> bytes:
    links = ("<a href=\"/s/\">My envelopes 我的信封</a><a href=\"/s/new\">New envelope 新建</a>" if area == "s"
             else "<a href=\"/o/\">Approvals and search 审批与检索</a>")
    nav = f"<nav aria-label=\"Signet\">{links}"
    if who is not None:
        nav += f"<span>Signed in as 登录身份: <code>{escape(f'{who.role}:{who.subject}')}</code></span>"
    html = pages._page(title, nav + "</nav>" + body)
    return html.replace(b"</head>", f"<link rel=\"stylesheet\" href=\"/{area}/console.css\"></head>".encode(), 1)


def _notes(message: str, ok: str) -> str:
    out = f"<div class=\"card error\" role=\"alert\">{escape(message)}</div>" if message else ""
    return out + (f"<div class=\"card ok\" role=\"status\">{escape(ok)}</div>" if ok else "")


def _text(name: str, label: str, value: str = "", *, maxlength: int = 500, required: bool = False,
          prefix: str = "") -> str:
    ident = f"{prefix}{name}"
    req = " required" if required else ""
    return (f"<label for=\"{ident}\">{label}</label><input type=\"text\" class=\"wide\" id=\"{ident}\" "
            f"name=\"{escape(name)}\" value=\"{escape(value)}\" maxlength=\"{maxlength}\"{req}>")


def sign_in(area: str, status: int, message: str) -> bytes:
    """401: no (usable) client certificate; 403: a certificate whose role has no business here."""
    what = "senders 发件人" if area == "s" else "operators 操作员"
    how = ("<p>These pages are for " + what + ". You sign in with the client certificate Signet issued to you "
           "(<code>client.crt</code> and <code>client.key</code>, or an operator's <code>operator.crt</code>), "
           "imported into your browser as a PKCS#12 file; there is no password. "
           "请使用 Signet 签发的客户端证书登录。</p>")
    return _page(area, "Sign in", f"<h1>Sign in 登录 ({status})</h1><div class=\"card error\" role=\"alert\">"
                                  f"<p>{escape(message)}</p></div>{how}")


# -- senders -----------------------------------------------------------------------------------------------------
def envelope_list(who: Any, envelopes: Sequence[Any], next_page: str) -> bytes:
    rows = "".join(
        f"<tr><td><a href=\"/s/env/{escape(e.id)}\">{escape(e.title)}</a></td>"
        f"<td>{escape(pages.ENVELOPE_STATE.get(str(e.state), str(e.state)))}</td><td>{utc(e.created_at)}</td>"
        f"<td>{sum(str(r.state) == 'signed' for r in e.recipients)} / {sum(r.signs for r in e.recipients)}</td></tr>"
        for e in envelopes)
    table = ("<table><caption>Envelopes you sent 您发出的信封</caption><tr><th scope=\"col\">Title 标题</th>"
             "<th scope=\"col\">State 状态</th><th scope=\"col\">Created 创建 (UTC)</th>"
             f"<th scope=\"col\">Signed 已签</th></tr>{rows}</table>") if envelopes else \
        "<p>No envelopes yet. 暂无信封。</p>"
    more = f"<p><a href=\"/s/?page={quote(next_page)}\">Older envelopes 更早</a></p>" if next_page else ""
    return _page("s", "My envelopes", f"<h1>My envelopes 我的信封</h1><div class=\"card\">{table}</div>{more}"
                                      "<p><a href=\"/s/new\">Create a new envelope 新建信封</a></p>", who=who)


def _recipient_row(i: int, values: Mapping[str, str]) -> str:
    def v(key: str, default: str = "") -> str:
        return values.get(f"r{i}_{key}", default)

    def select(key: str, label: str, options: Iterable[str], default: str) -> str:
        chosen = v(key, default)
        opts = "".join(f"<option value=\"{o}\"{' selected' if o == chosen else ''}>{o}</option>" for o in options)
        return (f"<div><label for=\"r{i}_{key}\">{label}</label>"
                f"<select id=\"r{i}_{key}\" name=\"r{i}_{key}\">{opts}</select></div>")

    def number(key: str, label: str, default: str) -> str:
        return (f"<div><label for=\"r{i}_{key}\">{label}</label><input type=\"number\" step=\"any\" min=\"0\" "
                f"id=\"r{i}_{key}\" name=\"r{i}_{key}\" value=\"{escape(v(key, default))}\"></div>")

    box = "".join(number(k, f"{k} (points 点)" if k != "page" else "Page 页", d) for k, d in FIELD_DEFAULTS.items())
    return (f"<fieldset><legend>Recipient {i} 收件人 {i}</legend>"
            + _text(f"r{i}_person", "Person id 人员编号", v("person"), maxlength=64)
            + "<div class=\"row\">" + select("role", "Role 角色", ROLES, "signer")
            + number("order", "Order 顺序", str(i)) + select("method", "Signs with 签署方式", METHODS, "token")
            + "</div><p>Signature box (PDF points from the bottom left) 签名位置</p>"
            + f"<div class=\"row\">{box}</div></fieldset>")


def create_form(who: Any, csrf: str, form_id: str, values: Mapping[str, str], *, message: str = "",
                max_mb: int = 16) -> bytes:
    hidden = (f"<input type=\"hidden\" name=\"csrf\" value=\"{escape(csrf)}\">"
              f"<input type=\"hidden\" name=\"form_id\" value=\"{escape(form_id)}\">")
    body = (f"<h1>New envelope 新建信封</h1>{_notes(message, '')}"
            "<form method=\"post\" action=\"/s/new\" enctype=\"multipart/form-data\" class=\"card\">" + hidden
            + _text("title", "Title 标题", values.get("title", ""), maxlength=200, required=True)
            + "<label for=\"message\">Message to the recipients 附言</label><textarea id=\"message\" name=\"message\" "
              f"rows=\"3\" maxlength=\"2000\">{escape(values.get('message', ''))}</textarea>"
            + f"<label for=\"document\">Document (one PDF, at most {max_mb} MiB) 文件</label>"
              "<input type=\"file\" id=\"document\" name=\"document\" accept=\"application/pdf\" required>"
            + "".join(_recipient_row(i, values) for i in range(1, ROWS + 1))
            + "<label for=\"expires\">Expires after (days; 0: the server's default) 有效天数</label>"
              f"<input type=\"number\" min=\"0\" max=\"365\" id=\"expires\" name=\"expires\" "
              f"value=\"{escape(values.get('expires', '0'))}\">"
            + "<p><button type=\"submit\">Create draft 创建草稿</button></p></form>")
    return _page("s", "New envelope", body, who=who)


def envelope(who: Any, env: Any, events: Sequence[Any], csrf: str, form_id: str, *, message: str = "",
             ok: str = "") -> bytes:
    """The sender's view: state, recipients, documents, the timeline, and what may be done now."""
    base = f"/s/env/{env.id}"
    recips = "".join(
        f"<tr><td>{escape(r.legal_name)}</td><td><code>{escape(r.person_id)}</code></td><td>{escape(str(r.role))}"
        f"</td><td>{r.routing_order}</td><td>{escape(str(r.signing_method))}</td>"
        f"<td>{escape(pages.STATE.get(str(r.state), str(r.state)))}</td><td>{utc(r.signed_at or r.declined_at)}"
        "</td></tr>" for r in sorted(env.recipients, key=lambda r: (r.routing_order, r.id)))
    docs = "".join(f"<li><a href=\"{escape(base)}/doc/{escape(d.id)}\">{escape(d.name)}</a> · {d.pages} page(s) · "
                   f"{d.signatures} signature(s) · SHA-256 <code>{escape(d.current_sha256)}</code></li>"
                   for d in env.documents)
    timeline = "".join(f"<tr><td>{utc(e.at)}</td><td>{escape(e.type)}</td><td><code>{escape(e.actor)}</code></td>"
                       "</tr>" for e in events)
    parts = [f"<h1>{escape(env.title)}</h1>", _notes(message, ok),
             f"<p>Envelope 信封: <code>{escape(env.id)}</code> · State 状态: <strong>"
             f"{escape(pages.ENVELOPE_STATE.get(str(env.state), str(env.state)))}</strong>"
             f" · Expires 到期: {utc(env.expires_at)}</p>",
             "<h2>Recipients 收件人</h2><div class=\"card\"><table><tr><th scope=\"col\">Name 姓名</th>"
             "<th scope=\"col\">Person 人员</th><th scope=\"col\">Role 角色</th><th scope=\"col\">Order 顺序</th>"
             "<th scope=\"col\">Method 方式</th><th scope=\"col\">State 状态</th><th scope=\"col\">Signed or "
             f"declined 时间 (UTC)</th></tr>{recips}</table></div>",
             f"<h2>Documents 文件</h2><ul class=\"card\">{docs}</ul>"]
    state = str(env.state)
    actions = []
    if state == "draft":
        if any(d.is_pdf for d in env.documents) and any(r.signs for r in env.recipients):
            actions.append(f"<p><a href=\"{escape(base)}/place\">Place the signature boxes and form fields on the "
                           "pages 在页面上放置签名位置与表单字段</a></p>")
        actions.append(pages._form(f"{base}/send", csrf, {"form_id": form_id}, "Send 发送"))
    if state in ("draft", "sent"):
        actions.append(pages._form(
            f"{base}/void", csrf, {"form_id": form_id}, "Void 作废", secondary=True,
            extra="<label for=\"reason\">Reason for voiding 作废理由</label><input type=\"text\" id=\"reason\" "
                  "name=\"reason\" maxlength=\"500\" required>"))
    if state == "completed":
        actions.append(f"<p><a href=\"{escape(base)}/evidence\">Download the evidence bundle 下载证据包</a> "
                       "(once the contract is sealed 封存后可用)</p>")
    if actions:
        parts.append("<h2>Actions 操作</h2><div class=\"card actions\">" + "".join(actions) + "</div>")
    parts.append("<h2>Timeline 时间线</h2><div class=\"card\"><table><tr><th scope=\"col\">When 时间 (UTC)</th>"
                 f"<th scope=\"col\">Event 事件</th><th scope=\"col\">By 操作者</th></tr>{timeline}</table></div>")
    return _page("s", env.title, "".join(parts), who=who)


PLACE_HELP = ("Drag each box onto its place on the pages (a signature box where its person signs, a form field "
              "where its person fills it in), and drag its corner to resize it. With the keyboard: Tab to a box; "
              "the arrow keys move it, Shift with the arrow keys resizes it, Page Down and Page Up move it to the "
              "next or previous page. The numbers below are what is saved (points from the bottom left of the "
              "page); you may also type them. 拖动每个签名框或表单字段到其位置, 拖动右下角调整大小; "
              "键盘: 方向键移动, Shift+方向键调整大小, Page Down/Page Up 换页。")
FORM_KINDS = {"text": "text 文本", "date": "date 日期", "checkbox": "checkbox 复选框"}


def _numbers(prefix: str, values: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    """The five numbers of a box (page, x1, y1, x2, y2), inputs ``<prefix>_<key>``."""
    p = escape(prefix)
    return "".join(
        f"<div><label for=\"{p}_{k}\">{'Page 页' if k == 'page' else f'{k} (points 点)'}</label>"
        f"<input type=\"number\" step=\"{1 if k == 'page' else 'any'}\" id=\"{p}_{k}\" name=\"{p}_{k}\" "
        f"value=\"{escape(values.get(f'{prefix}_{k}', defaults[k]))}\" required></div>" for k in FIELD_DEFAULTS)


def _num(v: float) -> str:
    return f"{v:.15g}"


def _add_form_field(signing: Sequence[Any], values: Mapping[str, str]) -> str:
    """The fieldset adding a form field (with a default box on page 1): its name, kind, person and whether it is
    required."""
    kind = values.get("new_kind", "text")
    kinds = "".join(f"<option value=\"{k}\"{' selected' if k == kind else ''}>{escape(t)}</option>"
                    for k, t in FORM_KINDS.items())
    who = values.get("new_recipient", "")
    people = "".join(f"<option value=\"{escape(r.id)}\"{' selected' if r.id == who else ''}>"
                     f"{escape(r.legal_name)} · {escape(str(r.role))}</option>" for r in signing)
    checked = " checked" if values.get("new_required") else ""
    return ("<fieldset><legend>Add a form field 添加表单字段</legend><div class=\"row\">"
            "<div><label for=\"new_name\">Name 名称 (a letter, then letters, digits, _ or -)</label>"
            f"<input type=\"text\" id=\"new_name\" name=\"new_name\" maxlength=\"64\" "
            f"value=\"{escape(values.get('new_name', ''))}\"></div>"
            f"<div><label for=\"new_kind\">Kind 类型</label><select id=\"new_kind\" name=\"new_kind\">{kinds}"
            "</select></div>"
            f"<div><label for=\"new_recipient\">Filled in by 填写人</label><select id=\"new_recipient\" "
            f"name=\"new_recipient\">{people}</select></div>"
            f"<div><input type=\"checkbox\" id=\"new_required\" name=\"new_required\" value=\"yes\"{checked}> "
            "<label for=\"new_required\">Required 必填</label></div></div>"
            "<p>It is added on page 1 with the placement above saved; then move it like the other boxes. "
            "添加到第 1 页, 然后移动到位。</p>"
            "<p><button type=\"submit\" name=\"action\" value=\"add\">Add form field 添加表单字段</button></p>"
            "</fieldset>")


def placement(who: Any, env: Any, doc: Any, boxes: Sequence[Any], csrf: str, values: Mapping[str, str], *,
              min_size: tuple[int, int], message: str = "", ok: str = "") -> bytes:
    """The placement step of a draft: its pages (of ``doc``, the first PDF; ``boxes`` their sizes in points, as
    data attributes) and, per signer and approver, the box as numbers in a form (the saved truth, which works without
    script), then every form field's box the same way (with a button removing it) and a fieldset adding one;
    ``/s/place.js`` draws each box on the pages (form fields labelled with their name and kind) and keeps the
    numbers in step as it is dragged or moved with the keyboard.  The form's first button saves (pressing Enter in
    a field saves)."""
    base = f"/s/env/{env.id}"
    signing = sorted((r for r in env.recipients if r.signs), key=lambda r: (r.routing_order, r.id))
    sets = []
    for i, r in enumerate(signing):
        f = r.field
        defaults = ({"page": str(f.page), "x1": f"{f.x1:g}", "y1": f"{f.y1:g}", "x2": f"{f.x2:g}", "y2": f"{f.y2:g}"}
                    if f is not None else {**FIELD_DEFAULTS, "y1": str(56 + 70 * i), "y2": str(116 + 70 * i)})
        rid = escape(r.id)
        sets.append(f"<fieldset data-box=\"{rid}\" data-label=\"Signature box 签名框: {escape(r.legal_name)}\" "
                    f"data-name=\"{escape(r.legal_name)}\"><legend>"
                    f"{escape(r.legal_name)} · {escape(str(r.role))} · order 顺序 {r.routing_order}</legend>"
                    f"<div class=\"row\">{_numbers(r.id, values, defaults)}</div></fieldset>")
    forms = []
    for r in signing:
        for ff in r.form_fields:
            prefix = f"ff-{ff.name}"
            kind = str(ff.kind)
            required = " · required 必填" if ff.required else ""
            defaults = {"page": str(ff.page), "x1": _num(ff.x1), "y1": _num(ff.y1), "x2": _num(ff.x2),
                        "y2": _num(ff.y2)}
            forms.append(
                f"<fieldset data-box=\"{escape(prefix)}\" data-form-field=\"{escape(ff.name)}\" "
                f"data-label=\"Form field 表单字段: {escape(ff.name)} ({escape(kind)}) · {escape(r.legal_name)}\" "
                f"data-name=\"{escape(ff.name)}\"><legend>Form field 表单字段 <code>{escape(ff.name)}</code> · "
                f"{escape(FORM_KINDS.get(kind, kind))} · filled in by 填写人 {escape(r.legal_name)}{required}</legend>"
                f"<div class=\"row\">{_numbers(prefix, values, defaults)}</div>"
                f"<p><button type=\"submit\" class=\"secondary\" name=\"remove\" value=\"{escape(ff.name)}\">"
                f"Remove {escape(ff.name)} 删除</button></p></fieldset>")
    n = len(boxes)
    sheets = "".join(
        f"<figure class=\"sheet\" data-page=\"{i}\" data-x0=\"{b.x0:g}\" data-y0=\"{b.y0:g}\" "
        f"data-w=\"{b.width:g}\" data-h=\"{b.height:g}\" data-rotate=\"{b.rotate}\"><img class=\"page\" "
        f"alt=\"{escape(doc.name)}, page {i} of {n}\" width=\"{round(b.width * 80 / 72)}\" "
        f"height=\"{round(b.height * 80 / 72)}\" src=\"{escape(base)}/doc/{escape(doc.id)}/page/{i}.png\">"
        f"<figcaption>Page {i} 第 {i} 页</figcaption></figure>" for i, b in enumerate(boxes, 1))
    several = sum(1 for d in env.documents if d.is_pdf) > 1
    none = "" if forms else "<p>No form field yet. 暂无表单字段。</p>"
    body = (f"<h1>Place the signature boxes and form fields 放置签名位置与表单字段</h1>{_notes(message, ok)}"
            f"<p>{escape(env.title)} · <a href=\"{escape(base)}\">Back to the envelope 返回信封</a></p>"
            f"<p id=\"place-help\">{escape(PLACE_HELP)}</p>"
            + ("<p>Each box goes on the same page of every PDF of the envelope; the pages shown are those of "
               f"{escape(doc.name)}. 每个框位于信封中每份PDF的同一页。</p>" if several else "")
            + "<p id=\"place-status\" role=\"status\" aria-live=\"polite\"></p>"
              f"<h2>Pages 页面</h2><div class=\"card\" id=\"sheets\">{sheets}</div>"
              "<h2>Signature boxes and form fields 签名位置与表单字段</h2>"
              f"<form method=\"post\" action=\"{escape(base)}/place\" class=\"card\" id=\"placement\" "
              f"data-min-width=\"{min_size[0]}\" data-min-height=\"{min_size[1]}\">"
              f"<input type=\"hidden\" name=\"csrf\" value=\"{escape(csrf)}\">"
              "<p><button type=\"submit\" name=\"action\" value=\"save\">Save placement 保存位置</button></p>"
              f"<h3>Signature boxes 签名位置</h3>{''.join(sets)}"
              f"<h3>Form fields 表单字段</h3>{none}{''.join(forms)}{_add_form_field(signing, values)}</form>"
              "<script src=\"/s/place.js\" defer></script>")
    return _page("s", f"Place: {env.title}", body, who=who)


# -- operators ---------------------------------------------------------------------------------------------------
def operator_home(who: Any, pending: Sequence[Any], csrf: str, *, message: str = "", ok: str = "") -> bytes:
    cards = []
    for p in pending:
        pid = escape(p.id)
        verified = "phone verified 手机已验证" if p.phone_verified else "phone not verified 手机未验证"
        approve = pages._form(f"/o/person/{p.id}/approve", csrf, {}, f"Approve {escape(p.legal_name)} 批准",
                              extra=_text("evidence", "Evidence seen 核验依据", required=True, prefix=f"{pid}-a-")
                              + _text("reference", "Reference 参考编号", maxlength=200, prefix=f"{pid}-a-"))
        reject = pages._form(f"/o/person/{p.id}/reject", csrf, {}, f"Reject {escape(p.legal_name)} 拒绝",
                             secondary=True,
                             extra=_text("reason", "Reason 理由", required=True, prefix=f"{pid}-r-")
                             + _text("reference", "Reference 参考编号", maxlength=200, prefix=f"{pid}-r-"))
        cards.append(f"<div class=\"card\"><h3>{escape(p.legal_name)}</h3><p><code>{pid}</code> · "
                     f"{escape(p.document_type)} ({escape(p.document_country)}) · {verified} · registered "
                     f"{utc(p.created_at)}</p><div class=\"actions\">{approve}{reject}</div></div>")
    pending_html = "".join(cards) or "<p>No identity is waiting for a decision. 暂无待审批。</p>"
    search = pages._form("/o/search", csrf, {}, "Search 检索",
                         extra=_text("q", "Words of the title, the parties or the text 关键词", required=True,
                                     maxlength=200))
    body = (f"<h1>Operator 操作员</h1>{_notes(message, ok)}<h2>Pending identity approvals 待审批身份</h2>"
            f"{pending_html}<h2>Contract search 合同检索</h2><div class=\"card\">{search}</div>")
    return _page("o", "Operator", body, who=who)


def search_results(who: Any, query: str, found: Any, csrf: str) -> bytes:
    rows = "".join(f"<tr><td><a href=\"/o/contract/{escape(s.envelope.id)}\">{escape(s.envelope.title)}</a></td>"
                   f"<td>{escape(', '.join(s.parties))}</td><td>{utc(s.envelope.completed_at)}</td>"
                   f"<td>{utc(s.sealed_at)}</td></tr>" for s in found.contracts)
    table = ("<table><tr><th scope=\"col\">Title 标题</th><th scope=\"col\">Parties 签署方</th><th scope=\"col\">"
             f"Completed 完成 (UTC)</th><th scope=\"col\">Sealed 封存 (UTC)</th></tr>{rows}</table>") if rows \
        else "<p>No contract matches. 无匹配合同。</p>"
    more = pages._form("/o/search", csrf, {"q": query, "page_token": found.next_page_token}, "More results 更多") \
        if found.next_page_token else ""
    again = pages._form("/o/search", csrf, {}, "Search 检索",
                        extra=_text("q", "Search again 重新检索", query, required=True, maxlength=200))
    body = (f"<h1>Contracts 合同</h1><p>{found.total} found for 检索词 “{escape(query)}”</p>"
            f"<div class=\"card\">{table}{more}</div><div class=\"card\">{again}</div>")
    return _page("o", "Contract search", body, who=who)


def contract(who: Any, summary: Any, files: Sequence[Any]) -> bytes:
    env = summary.envelope
    base = f"/o/contract/{env.id}"
    items = "".join(f"<li><a href=\"{escape(base)}/file/{n}\">{escape(f.name)}</a> · {escape(f.kind)} · "
                    f"{f.size} bytes · SHA-256 <code>{escape(f.sha256)}</code></li>" for n, f in enumerate(files))
    body = (f"<h1>{escape(env.title)}</h1><p>Contract 合同: <code>{escape(env.id)}</code> · Parties 签署方: "
            f"{escape(', '.join(summary.parties))} · Completed 完成: {utc(env.completed_at)} · Sealed 封存: "
            f"{utc(summary.sealed_at)}</p><h2>Files 文件</h2><ul class=\"card\">{items}</ul>"
            f"<p><a href=\"{escape(base)}/evidence\">Download the evidence bundle 下载证据包</a></p>")
    return _page("o", env.title, body, who=who)


def problem(area: str, status: int, message: str, who: Any = None) -> bytes:
    back = "/s/" if area == "s" else "/o/"
    return _page(area, "Not available", f"<h1>Not available 无法完成</h1><div class=\"card error\" role=\"alert\">"
                                        f"<p>{escape(message)}</p></div><p>({status}) <a href=\"{back}\">Back 返回"
                                        "</a></p>", who=who)
