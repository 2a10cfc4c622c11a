"""The station's pages: plain HTML, no script, one stylesheet from the station itself, English and Chinese.

Pages that show a person's documents are sent without their end: :mod:`.web` holds them open and, when the session
ends (card out, idle), finishes them with :data:`LEAVE`, which sends the browser back to the welcome page.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from signet.v1 import server_pb2 as pb

CSS = b"""
html { font-family: "Noto Sans", "Noto Sans CJK SC", sans-serif; background: #f4f6f8; color: #1a1a1a; }
body { margin: 0 auto; max-width: 60rem; padding: 1.5rem; font-size: 1.25rem; line-height: 1.5; }
h1 { font-size: 2rem; margin: 0.5rem 0 1rem; }
a { color: #0b4f9c; }
.button, button { display: inline-block; font-size: 1.25rem; padding: 0.75rem 1.5rem; margin: 0.5rem 0.5rem 0.5rem 0;
  border: 2px solid #0b4f9c; border-radius: 0.5rem; background: #0b4f9c; color: #fff; text-decoration: none;
  cursor: pointer; }
.secondary { background: #fff; color: #0b4f9c; }
a:focus, button:focus, input:focus { outline: 3px solid #b3470b; outline-offset: 2px; }
ul.envelopes { list-style: none; padding: 0; }
ul.envelopes li { background: #fff; border: 1px solid #c5ccd3; border-radius: 0.5rem; padding: 1rem; margin: 0 0 1rem; }
.page { display: block; max-width: 100%; height: auto; border: 1px solid #8a939c; background: #fff; margin: 1rem 0; }
.hash { font-family: monospace; word-break: break-all; font-size: 1rem; }
.notice { background: #fff4e5; border-left: 0.4rem solid #b3470b; padding: 0.75rem 1rem; }
.ok { background: #e7f5ea; border-left: 0.4rem solid #1d6b30; padding: 0.75rem 1rem; }
label { display: block; margin: 1rem 0 0.25rem; font-weight: bold; }
input { font-size: 1.5rem; padding: 0.5rem; width: 12rem; border: 2px solid #5a636c; border-radius: 0.25rem; }
"""

LEAVE = b'<meta http-equiv="refresh" content="0;url=/">'


def _head(title: str, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
            f'<title>{escape(title)}</title><link rel="stylesheet" href="/kiosk.css"></head><body><main>')


def _end() -> str:
    return "</main></body></html>"


def welcome(message: str = "") -> bytes:
    note = f'<p class="notice" role="status">{escape(message)}</p>' if message else ""
    return (_head("Signing station", refresh=1) + '<h1>Insert your card <span lang="zh">请插入您的卡</span></h1>'
            "<p>Put your signing card in the reader to see the documents waiting for you.</p>"
            f'<p lang="zh">将签名卡插入读卡器，查看等待您签署的文件。</p>{note}' + _end()).encode()  # noqa: RUF001 - Chinese punctuation


def unlock(csrf: str, error: str = "") -> str:
    """The PIN page of a card just inserted: its PIN has the card prove itself, and the documents open."""
    note = f'<p class="notice" role="alert">{escape(error)}</p>' if error else ""
    return (_head("Open your documents") + "<h1>Enter your card PIN to open your documents "
            '<span lang="zh">请输入卡密码以打开您的文件</span></h1>'
            f"{note}<p>Your card confirms that it is yours and that it is here. Nothing is signed now.</p>"
            '<p lang="zh">您的卡将确认它属于您并且就在这里。现在不会签署任何文件。</p>'
            '<form method="post" action="/unlock" autocomplete="off">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<label for="pin">Card PIN 卡密码</label>'
            '<input id="pin" name="pin" type="password" autocomplete="off" required autofocus>'
            '<p><button type="submit">Open my documents 打开我的文件</button></p></form>'
            "<p>Remove your card at any time to leave. 随时取出卡即可离开。</p>")


def _finish_form(csrf: str) -> str:
    return (f'<form method="post" action="/finish"><input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<button type="submit" class="secondary">Finish 完成</button></form>')


def inbox(name: str, envelopes: list[pb.Envelope], csrf: str) -> str:
    items = []
    for e in envelopes:
        docs = "".join(
            f'<li><a class="button" href="/review?{urlencode({"e": e.id, "d": d.id, "p": 1})}">'
            f"Review {escape(d.name)}</a> ({d.pages} page{'s' if d.pages != 1 else ''})</li>" for d in e.documents)
        items.append(f"<li><h2>{escape(e.title)}</h2><p>From {escape(e.sender_name)}</p><ul>{docs}</ul></li>")
    body = (f'<ul class="envelopes">{"".join(items)}</ul>' if items
            else '<p class="ok" role="status">Nothing is waiting for you. 没有等待您签署的文件。</p>')
    return (_head("Your documents") + f"<h1>Welcome, {escape(name)}</h1><p>Documents waiting for your signature "
            f'<span lang="zh">等待您签署的文件</span>:</p>{body}{_finish_form(csrf)}'
            "<p>Remove your card at any time to leave. 随时取出卡即可离开。</p>")


def review(env: pb.Envelope, doc: pb.EnvelopeDocument, page: int, sha256: str, csrf: str) -> str:
    q = {"e": env.id, "d": doc.id}
    nav = []
    if page > 1:
        nav.append(f'<a class="button secondary" href="/review?{urlencode({**q, "p": page - 1})}">Previous page</a>')
    if page < doc.pages:
        nav.append(f'<a class="button secondary" href="/review?{urlencode({**q, "p": page + 1})}">Next page</a>')
    img = f"/page.png?{urlencode({**q, 'p': page})}"
    return (_head(f"Review {doc.name}") + f"<h1>{escape(env.title)}</h1>"
            f"<p>{escape(doc.name)} — page {page} of {doc.pages}</p>"
            f'<p>SHA-256 of this document: <span class="hash">{escape(sha256)}</span></p>'
            f'<img class="page" src="{escape(img)}" alt="Page {page} of {escape(doc.name)}">'
            f'<nav aria-label="Pages">{"".join(nav)}</nav>'
            '<form method="post" action="/code">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}"><input type="hidden" name="e" '
            f'value="{escape(env.id)}"><input type="hidden" name="d" value="{escape(doc.id)}">'
            f'<input type="hidden" name="sha256" value="{escape(sha256)}">'
            "<button type=\"submit\">Sign this document 签署此文件</button></form>"
            '<p><a href="/inbox">Back to your documents</a></p>')


def sign_form(env: pb.Envelope, doc: pb.EnvelopeDocument, sha256: str, channel: str, csrf: str,
              error: str = "") -> str:
    note = f'<p class="notice" role="alert">{escape(error)}</p>' if error else ""
    return (_head(f"Sign {doc.name}") + f"<h1>Sign {escape(doc.name)}</h1>{note}"
            f"<p>A one-time code for this exact document was sent to you ({escape(channel)}).</p>"
            f'<p>SHA-256: <span class="hash">{escape(sha256)}</span></p>'
            '<form method="post" action="/sign" autocomplete="off">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}"><input type="hidden" name="e" '
            f'value="{escape(env.id)}"><input type="hidden" name="d" value="{escape(doc.id)}">'
            '<label for="code">One-time code 验证码</label>'
            '<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required>'
            '<label for="pin">Card PIN 卡密码</label>'
            '<input id="pin" name="pin" type="password" autocomplete="off" required>'
            '<p><button type="submit">Sign 签署</button></p></form>'
            '<p><a href="/inbox">Cancel</a></p>')


def signed(env: pb.Envelope, doc_name: str, csrf: str) -> str:
    return (_head("Signed") + f'<h1>Signed 已签署</h1><p class="ok" role="status">You signed {escape(doc_name)} '
            f"of “{escape(env.title)}”.</p>"
            '<p><a class="button" href="/inbox">Your other documents</a></p>'
            f"{_finish_form(csrf)}<p>Remove your card when you are done. 完成后请取出您的卡。</p>")


def problem(message: str) -> bytes:
    return (_head("Signing station") + f'<h1>Something went wrong</h1><p class="notice" role="alert">'
            f'{escape(message)}</p><p><a class="button" href="/">Start again</a></p>' + _end()).encode()


def closing() -> bytes:
    return _end().encode()
