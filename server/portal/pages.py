"""The portal's HTML: server-rendered pages with no script at all (the Content-Security-Policy allows none), one
stylesheet, English and Chinese labels side by side.  Every value from the envelope is escaped here."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

CSS = b"""body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:0;background:#f6f7f9;color:#111}
main{max-width:860px;margin:0 auto;padding:1.5rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
.card{background:#fff;border:1px solid #ccd;border-radius:8px;padding:1rem;margin:1rem 0}
.page{display:block;max-width:100%;border:1px solid #999;margin:.5rem 0}
code{word-break:break-all;font-size:.85rem}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:6px;border:1px solid #124;background:#1a4ed8;color:#fff}
button.secondary{background:#fff;color:#124}
button:focus,input:focus,a:focus{outline:3px solid #f59e0b;outline-offset:2px}
label{display:block;margin:.5rem 0 .25rem}input[type=text]{font-size:1.1rem;padding:.4rem}
.error{background:#fee2e2;border-color:#b91c1c}.ok{background:#dcfce7;border-color:#15803d}
table{border-collapse:collapse}td,th{padding:.25rem .6rem;text-align:left;border-bottom:1px solid #dde}
"""

STATE = {"pending": "pending 待处理", "notified": "notified 已通知", "viewed": "viewed 已查看",
         "signed": "signed 已签署", "declined": "declined 已拒绝"}
ENVELOPE_STATE = {"sent": "waiting for signatures 待签署", "completed": "completed 已完成",
                  "declined": "declined 已拒绝", "voided": "voided 已作废", "expired": "expired 已过期",
                  "draft": "draft 草稿"}


@dataclass(frozen=True)
class Bridge:
    """Where a token signer's code form posts: their agent's local bridge, and where it sends them back."""

    action: str  # http://127.0.0.1:PORT/v1/sign
    back: str  # the envelope page, absolute
    nonce: str  # per form: the bridge signs once per nonce
    timestamp_url: str  # the server's TSA for a PAdES B-T signature ("" for none)


def _page(title: str, body: str) -> bytes:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)} — Signet</title><link rel=\"stylesheet\" href=\"/portal.css\"></head>"
            f"<body><main>{body}</main></body></html>").encode()


def _form(action: str, csrf: str, fields: dict[str, str], button: str, *, secondary: bool = False,
          extra: str = "") -> str:
    hidden = "".join(f"<input type=\"hidden\" name=\"{escape(k)}\" value=\"{escape(v)}\">"
                     for k, v in {"csrf": csrf, **fields}.items())
    cls = " class=\"secondary\"" if secondary else ""
    return (f"<form method=\"post\" action=\"{escape(action)}\">{hidden}{extra}"
            f"<button type=\"submit\"{cls}>{button}</button></form>")


def envelope(base: str, env: Any, me: Any, csrf: str, *, message: str = "", ok: str = "") -> bytes:
    """The recipient's view: the documents page by page with their SHA-256, who signed, and what to do."""
    parts = [f"<h1>{escape(env.title)}</h1>",
             f"<p>From 发件人: {escape(env.sender_name)} · Envelope 信封: <code>{escape(env.id)}</code></p>"]
    if message:
        parts.append(f"<div class=\"card error\" role=\"alert\">{escape(message)}</div>")
    if ok:
        parts.append(f"<div class=\"card ok\" role=\"status\">{escape(ok)}</div>")
    rows = "".join(f"<tr><td>{escape(r.legal_name)}</td><td>{escape(STATE.get(str(r.state), str(r.state)))}"
                   f"</td></tr>" for r in env.recipients)
    parts.append(f"<p>State 状态: <strong>{escape(ENVELOPE_STATE.get(str(env.state), str(env.state)))}</strong></p>")
    parts.append(f"<h2>Parties 签署方</h2><table><tr><th>Name 姓名</th><th>State 状态</th></tr>{rows}</table>")
    for d in env.documents:
        pages = "".join(f"<img class=\"page\" alt=\"{escape(d.name)}, page {n} of {d.pages}\" "
                        f"src=\"{escape(base)}/doc/{escape(d.id)}/page/{n}.png\">" for n in range(1, d.pages + 1))
        parts.append(f"<h2>{escape(d.name)}</h2><div class=\"card\"><p>SHA-256 of what you sign 待签文件摘要: "
                     f"<code>{escape(d.current_sha256)}</code> · {d.signatures} signature(s) 个签名 · "
                     f"<a href=\"{escape(base)}/doc/{escape(d.id)}/file\">Download 下载</a></p>{pages}</div>")
    if str(me.state) in ("notified", "viewed") and str(env.state) == "sent" and me.signs:
        if str(me.signing_method) == "remote":  # a key held for the recipient on the server token
            for d in env.documents:
                parts.append("<div class=\"card\">" + _form(
                    f"{base}/code", csrf, {"document": d.id, "sha256": d.current_sha256},
                    f"Send me a code to sign {escape(d.name)} 发送验证码") + "</div>")
        else:  # the person's own token: through their agent's bridge (the code form posts there), or the CLI
            for d in env.documents:
                parts.append("<div class=\"card\">" + _form(
                    f"{base}/code", csrf, {"document": d.id, "sha256": d.current_sha256},
                    f"Send me a code to sign {escape(d.name)} with my token 发送验证码 (令牌签署)") + "</div>")
            parts.append("<div class=\"card\"><p>Your Signet agent signs on your token and asks for your PIN in its "
                         "own window, never in this page. Without the agent's bridge, sign from the command line: "
                         f"<code>signet envelope sign {escape(env.id)}</code> 请用您的签名令牌签署</p></div>")
        parts.append("<div class=\"card\">" + _form(
            f"{base}/decline", csrf, {}, "Decline 拒绝签署", secondary=True,
            extra="<label for=\"reason\">Reason 理由</label><input type=\"text\" id=\"reason\" name=\"reason\" "
                  "maxlength=\"500\" required>") + "</div>")
    return _page(env.title, "".join(parts))


FIELD_PREFIX = "field."  # a form field's value in the signing form: field.<its name>


def field_inputs(me: Any, doc: Any, values: dict[str, str] | None = None) -> str:
    """The recipient's own form fields of a PDF, to fill in the signature's revision (the sender placed them)."""
    if me is None or not doc.is_pdf or not me.form_fields:
        return ""
    values = values or {}
    rows = []
    for n, f in enumerate(me.form_fields):
        fid, name = f"ff{n}", escape(FIELD_PREFIX + f.name)
        req = " required" if f.required else ""
        label = f"{escape(f.name)}{' (required 必填)' if f.required else ''}"
        if str(f.kind) == "checkbox":
            checked = " checked" if values.get(f.name) == "yes" else ""
            rows.append(f"<p><input type=\"checkbox\" id=\"{fid}\" name=\"{name}\" value=\"yes\"{checked}{req}> "
                        f"<label for=\"{fid}\">{label}</label></p>")
        else:
            kind = "date" if str(f.kind) == "date" else "text"
            rows.append(f"<label for=\"{fid}\">{label}</label><input type=\"{kind}\" id=\"{fid}\" name=\"{name}\" "
                        f"value=\"{escape(values.get(f.name, ''))}\" maxlength=\"200\"{req}>")
    return ("<fieldset><legend>Your form fields 您的表单字段 (page and place as the sender set them)</legend>"
            + "".join(rows) + "</fieldset>")


def field_values(form: dict[str, str]) -> dict[str, str]:
    """The form fields' values posted with a signing form (an unchecked checkbox is not posted: "no")."""
    return {k[len(FIELD_PREFIX):]: v.strip() for k, v in form.items() if k.startswith(FIELD_PREFIX)}


def code_form(base: str, env: Any, doc: Any, code_id: str, csrf: str, *, message: str = "",
              bridge: Bridge | None = None, me: Any = None, values: dict[str, str] | None = None) -> bytes:
    """Enter the one-time code that was just sent; it is bound to this revision's SHA-256.  With ``bridge`` the
    form goes to the signer's own agent, which signs on their token after its own confirmation (and PIN).  ``me``:
    the recipient, whose form fields of this document are filled in the same form."""
    error = f"<div class=\"card error\" role=\"alert\">{escape(message)}</div>" if message else ""
    code_input = (field_inputs(me, doc, values) +
                  "<label for=\"code\">One-time code 验证码</label><input type=\"text\" id=\"code\" name=\"code\" "
                  "inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"10\" required>")
    if bridge is not None:
        body = (f"<h1>{escape(env.title)}</h1>{error}<div class=\"card\"><p>A code was sent to your phone. It signs "
                f"exactly this revision of {escape(doc.name)} 验证码只用于签署此版本: "
                f"<code>{escape(doc.current_sha256)}</code></p><p>Your Signet agent will show this document's name "
                "and SHA-256 and ask for your token's PIN in its own window 签名代理将在其窗口中请求PIN。</p>"
                + _form(
                    bridge.action, csrf, {"envelope": env.id, "document": doc.id, "sha256": doc.current_sha256,
                                          "code_id": code_id, "nonce": bridge.nonce, "return": bridge.back,
                                          "timestamp_url": bridge.timestamp_url},
                    "Sign with my token 用令牌签署", extra=code_input)
                + f"</div><p><a href=\"{escape(base)}\">Back 返回</a></p>")
        return _page(env.title, body)
    body = (f"<h1>{escape(env.title)}</h1>{error}<div class=\"card\"><p>A code was sent to your phone. It signs "
            f"exactly this revision of {escape(doc.name)} 验证码只用于签署此版本: <code>{escape(doc.current_sha256)}"
            "</code></p>" + _form(
                f"{base}/sign", csrf, {"document": doc.id, "sha256": doc.current_sha256, "code_id": code_id},
                "Sign 签署", extra=code_input)
            + f"</div><p><a href=\"{escape(base)}\">Back 返回</a></p>")
    return _page(env.title, body)


def problem(status: int, message: str) -> bytes:
    return _page("Not available", f"<h1>Not available 无法访问</h1><div class=\"card error\" role=\"alert\">"
                                  f"<p>{escape(message)}</p></div><p>({status})</p>")
