"""The options of `signet inbox` and `signet envelope ACTION` (light: the parser imports no stubs)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _server(a: argparse.ArgumentParser) -> None:
    a.add_argument("--server-api", metavar="HOST:PORT", help="the server's API (default: from the enrollment)")
    a.add_argument("--identity", metavar="DIR", default=os.environ.get("SIGNET_IDENTITY_DIR") or None,
                   help="talk to the server directly, without the agent, with the API files an operator gave you "
                        "(signet-admin remote-key create --out DIR; default $SIGNET_IDENTITY_DIR)")


def add_contract_arguments(sub: Any) -> None:
    """`signet contracts ACTION` and `signet evidence ENVELOPE -o FILE` (sealed contracts on signet-server)."""
    con = sub.add_parser("contracts", help="sealed contracts: search, show, download (signet-server)")
    acts = con.add_subparsers(dest="action", required=True)
    a = acts.add_parser("search", help="keyword search over title, parties, tags and text (every word must match)")
    _server(a)
    a.add_argument("query", nargs="+", help="words (Chinese is matched by character pairs)")
    a.add_argument("--party", metavar="PERSON", help="operators: only contracts this person is a party to")
    a.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="completed on or after this day (UTC)")
    a.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="completed before this day (UTC)")
    a.add_argument("--order", choices=("relevance", "date"), default="relevance")
    a.add_argument("--limit", type=int, default=20, help="results per page (1..100)")
    a.add_argument("--page-token", default="", help="the next_page_token of the previous page")
    a = acts.add_parser("show", help="a sealed contract: parties, times and archived files with SHA-256")
    _server(a)
    a.add_argument("envelope")
    a = acts.add_parser("download", help="the sealed files of a contract (decrypted by the server)")
    _server(a)
    a.add_argument("envelope")
    a.add_argument("-o", "--output", default=".", help="directory (created)")
    a.add_argument("--file", action="append", default=[], help="only this file (repeatable; default: all)")
    ev = sub.add_parser("evidence", help="the evidence bundle of a sealed contract (check it: signet "
                                         "verify-evidence)")
    _server(ev)
    ev.add_argument("envelope")
    ev.add_argument("-o", "--output", required=True, metavar="BUNDLE.zip")


def add_arguments(sub: Any, tok: Any) -> None:
    """`signet inbox` and `signet envelope ACTION` (``tok`` adds the token and PIN options)."""
    sp = sub.add_parser("inbox", help="envelopes waiting for you")
    _server(sp)
    env = sub.add_parser("envelope", help="contracts sent between parties (signet-server)")
    acts = env.add_subparsers(dest="action", required=True)

    def act(name: str, text: str, with_id: bool = True) -> argparse.ArgumentParser:
        a: argparse.ArgumentParser = acts.add_parser(name, help=text)
        _server(a)
        if with_id:
            a.add_argument("envelope")
        return a

    a = act("create", "a draft envelope with documents and recipients", with_id=False)
    a.add_argument("--title", required=True)
    a.add_argument("--message", default="")
    a.add_argument("--tag", action="append", default=[])
    a.add_argument("--document", action="append", required=True, metavar="FILE")
    a.add_argument("--recipient", action="append", required=True, metavar="PERSON[:ROLE[:ORDER[:PAGE,X1,Y1,X2,Y2]]]",
                   help="role signer (default), approver or copy; order 1, 2, ... (equal: a parallel group)")
    a.add_argument("--remote-signer", action="append", default=[], metavar="PERSON",
                   help="this recipient signs remotely, with the key the server holds for them (repeatable)")
    a.add_argument("--form-field", action="append", default=[], metavar="PERSON:NAME:KIND:PAGE,X1,Y1,X2,Y2[:required]",
                   help="a form field that recipient fills when signing: KIND text, date (YYYY-MM-DD) or checkbox; "
                        "placed on every PDF (repeatable)")
    a.add_argument("--signature-page", action="store_true",
                   help="the server appends a signature page to each PDF: a box for every signer and approver "
                        "without a PAGE,X1,Y1,X2,Y2 box")
    a.add_argument("--expires-in-days", type=int, default=0)
    a.add_argument("--idempotency-key", help="retrying with the same key never creates a second envelope")
    a = act("send", "lock the documents and notify the first recipients")
    a.add_argument("--idempotency-key")
    act("show", "the envelope: documents with SHA-256, recipients and their state")
    a = act("list", "envelopes you sent or that are addressed to you", with_id=False)
    a.add_argument("--view", choices=("all", "sent", "inbox"), default="all")
    a = act("sign", "sign your turn: --send-code, then --code-env VAR (or a prompt)")
    tok(a)
    a.add_argument("--document", help="document id (default: each document, one code each)")
    a.add_argument("--key", help="key id (default: the token's only key with a certificate)")
    a.add_argument("--send-code", action="store_true", help="only have the code for the current revision sent")
    a.add_argument("--code-env", metavar="VAR", help="the one-time code from this environment variable")
    a.add_argument("--code-file", help="... from the first line of this 0600 file")
    a.add_argument("--remote", action="store_true",
                   help="have the server sign with the key it holds for you (no token; with --identity: no agent)")
    a.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                   help="fill one of your form fields in the revision you sign (date: YYYY-MM-DD; checkbox: yes or "
                        "no; repeatable)")
    a = act("decline", "decline to sign, with a reason")
    a.add_argument("--reason", required=True)
    a = act("void", "sender: withdraw the envelope")
    a.add_argument("--reason", required=True)
    a = act("download", "the current revision of every document (and detached signatures)")
    a.add_argument("-o", "--output", default=".", help="directory (created)")
    act("events", "the envelope's timeline")
    a = acts.add_parser("bulk-send", help="one envelope per CSV row from a template draft ({{name}} placeholders)")
    _server(a)
    a.add_argument("envelope", metavar="TEMPLATE_ID", help="a draft of yours: its documents, message and recipients")
    a.add_argument("rows", metavar="ROWS.csv", help="header row: placeholder names; then one row per envelope")
    a.add_argument("--idempotency-key", help="default: from the template id and the file, so running the same "
                                             "command again sends only the rows not sent yet")
