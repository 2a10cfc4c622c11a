"""`signet contracts search|show|download` and `signet evidence ENVELOPE -o BUNDLE.zip`: sealed contracts on
signet-server (ContractService), through the caller's agent identity or ``--identity DIR``.  A person finds and
fetches only the contracts they are a party to; an operator those of its organisation."""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from signet.durable import write_atomic
from signet.v1 import server_pb2

from .cli_errors import Usage
from .serverlink import ServerLink


def _day(text: str | None, flag: str) -> Timestamp | None:
    if not text:
        return None
    try:
        when = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise Usage(f"{flag} is a day, YYYY-MM-DD") from None
    out = Timestamp()
    out.FromDatetime(when)
    return out


def _when(ts: Any) -> str:
    return f"{ts.ToDatetime():%Y-%m-%d %H:%M:%S} UTC" if ts.seconds else "-"


def _safe_name(name: str) -> str:
    base = Path(name).name
    if not base or base in (".", "..") or base != name:
        raise Usage(f"the server named a file {name!r}: refused (not a plain file name)")
    return base


def _evidence(args: argparse.Namespace, link: ServerLink) -> int:
    r = link.call(link.contracts.ExportEvidence, server_pb2.ExportEvidenceRequest(envelope_id=args.envelope),
                  timeout=300)
    if hashlib.sha256(r.bundle).hexdigest() != r.sha256:
        raise Usage("the bundle received does not match the SHA-256 the server sent: not written")
    write_atomic(Path(args.output), r.bundle, 0o600)
    text = f"{args.output}: {len(r.bundle)} bytes, sha256 {r.sha256} (check it: signet verify-evidence " \
           f"{args.output} --trust SIGNING-ROOT.pem)"
    print(json.dumps({"envelope": args.envelope, "bundle": args.output, "bytes": len(r.bundle),
                      "sha256": r.sha256}) if args.json else text)
    return 0


def _search(args: argparse.Namespace, link: ServerLink) -> int:
    found = link.call(link.contracts.SearchContracts, server_pb2.SearchContractsRequest(
        query=" ".join(args.query), party_person_id=args.party or "",
        completed_from=_day(args.date_from, "--from"), completed_to=_day(args.date_to, "--to"),
        order=args.order, page_size=args.limit, page_token=args.page_token))
    if args.json:
        print(json.dumps(MessageToDict(found), ensure_ascii=False, indent=2, sort_keys=True))
        return 0
    for c in found.contracts:
        print(f"{c.envelope_id}  {_when(c.completed_at)}  {c.title}  ({', '.join(c.parties)})")
    print(f"{found.total} contract(s)" + (f"; more: --page-token {found.next_page_token}"
                                         if found.next_page_token else ""))
    return 0


def _show(args: argparse.Namespace, link: ServerLink) -> int:
    r = link.call(link.contracts.GetContract, server_pb2.GetContractRequest(envelope_id=args.envelope))
    if args.json:
        print(json.dumps(MessageToDict(r), ensure_ascii=False, indent=2, sort_keys=True))
        return 0
    c = r.contract
    print(f"{c.envelope_id}  {c.title}\n  parties: {', '.join(c.parties)}\n  completed "
          f"{_when(c.completed_at)}, sealed {_when(c.sealed_at)}")
    for f in r.files:
        print(f"  {f.kind:<11} {f.name}  {f.size} bytes  sha256 {f.sha256}")
    return 0


def _download(args: argparse.Namespace, link: ServerLink) -> int:
    svc = link.contracts
    listing = link.call(svc.GetContract, server_pb2.GetContractRequest(envelope_id=args.envelope))
    names = [f.name for f in listing.files]
    wanted = args.file or names
    unknown = set(wanted) - set(names)
    if unknown:
        raise Usage(f"contract {args.envelope} has no file {', '.join(sorted(unknown))} (it has: "
                    f"{', '.join(names)})")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in wanted:
        r = link.call(svc.DownloadContract, server_pb2.DownloadContractRequest(envelope_id=args.envelope, name=name),
                      timeout=300)
        if hashlib.sha256(r.content).hexdigest() != r.file.sha256:
            raise Usage(f"{name}: the bytes received do not match their SHA-256: not written")
        path = out / _safe_name(r.file.name)
        write_atomic(path, r.content, 0o644)
        written.append(str(path))
    print(json.dumps({"envelope": args.envelope, "files": written}) if args.json else "\n".join(written))
    return 0


def run(args: argparse.Namespace, link: ServerLink) -> int:
    """Carry out `signet contracts ACTION` / `signet evidence`; the server's refusals raise ServerRefused."""
    if args.command == "evidence":
        return _evidence(args, link)
    actions = {"search": _search, "show": _show, "download": _download}
    if args.action not in actions:
        raise Usage(f"unknown contracts action {args.action!r}")
    return actions[args.action](args, link)
