"""`signet envelope bulk-send TEMPLATE ROWS.csv`: one envelope per CSV row, through BulkSendEnvelopes.

The CSV's header row names the placeholders (``signer`` fills ``{{signer}}``); each later row is one envelope.
The rows go to the server in calls of :data:`CHUNK` rows, each with its own idempotency key derived from one key
for the whole file -- by default from the template id and the file's SHA-256, so running the same command again
after an interruption sends only the rows that were not sent (``--idempotency-key`` to choose it).  The report
lists every row (its CSV line, the envelope sent or the refusal: status, reason, message) and a summary;
progress goes to stderr for files of more than one call.  Exit 0 when every row was sent, 1 when any failed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signet.v1 import server_pb2

from .cli_errors import BadInput
from .serverlink import ServerLink

CHUNK = 100  # rows per call (the server takes at most 1000)
TIMEOUT = 300.0  # seconds for one call: each row is a create and a send


class BadRows(BadInput):
    """The CSV cannot be used (exit 9)."""


@dataclass(frozen=True)
class Row:
    line: int  # where the row ends in the file (the header is line 1)
    values: dict[str, str]


def read_rows(path: Path) -> list[Row]:
    """The data rows of a CSV file whose first row names the placeholders (UTF-8, a byte-order mark allowed)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise BadRows(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise BadRows(f"{path} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise BadRows(f"{path} is empty: its first row names the placeholders") from None
    except csv.Error as e:
        raise BadRows(f"{path}: {e}") from None
    if not all(header) or len(set(header)) != len(header):
        raise BadRows(f"{path}: the header row needs one distinct name per column, got {header}")
    rows = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) > len(header):
                raise BadRows(f"{path} line {reader.line_num}: {len(cells)} cells for {len(header)} columns")
            rows.append(Row(reader.line_num, dict(zip(header, [*cells, *[""] * (len(header) - len(cells))],
                                                      strict=True))))
    except csv.Error as e:
        raise BadRows(f"{path} line {reader.line_num}: {e}") from None
    if not rows:
        raise BadRows(f"{path} has a header row but no rows")
    return rows


def _file_key(template: str, path: Path) -> str:
    return "bulk-" + hashlib.sha256(template.encode() + b"\0" + path.read_bytes()).hexdigest()[:32]


def _entry(row: Row, number: int, result: server_pb2.BulkRowResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"row": number, "line": row.line}
    if result.WhichOneof("outcome") == "envelope_id":
        entry["envelope_id"] = result.envelope_id
    else:
        entry["error"] = {"code": result.error.code, "reason": result.error.reason, "message": result.error.message}
    return entry


def _line(e: dict[str, Any]) -> str:
    where = f"row {e['row']} (line {e['line']})"
    if "envelope_id" in e:
        return f"{where}: sent {e['envelope_id']}"
    err = e["error"]
    return f"{where}: FAILED {err['code']} {err['reason']}: {err['message']}"


def bulk_send(args: argparse.Namespace, link: ServerLink) -> int:
    rows = read_rows(Path(args.rows))
    key = args.idempotency_key or _file_key(args.envelope, Path(args.rows))
    show_progress = len(rows) > CHUNK and (args.progress or sys.stderr.isatty())
    report: list[dict[str, Any]] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        r = link.call(link.envelopes.BulkSendEnvelopes, server_pb2.BulkSendEnvelopesRequest(
            idempotency_key=f"{key}/{start}", template_envelope_id=args.envelope,
            rows=[server_pb2.BulkRow(values=row.values) for row in chunk]), timeout=TIMEOUT)
        if [x.row for x in r.results] != list(range(len(chunk))):
            raise BadRows("the server's answer does not list every row once, in order")  # pragma: no cover
        entries = [_entry(row, start + i + 1, x) for i, (row, x) in enumerate(zip(chunk, r.results, strict=True))]
        report.extend(entries)
        if not args.json:
            for e in entries:
                print(_line(e), flush=True)
        if show_progress:
            failed = sum("error" in e for e in report)
            sys.stderr.write(f"\rbulk send: {len(report)}/{len(rows)} rows ({failed} failed)")
            sys.stderr.write("\n" if len(report) == len(rows) else "")
            sys.stderr.flush()
    failed = sum("error" in e for e in report)
    sent = len(report) - failed
    if args.json:
        print(json.dumps({"template": args.envelope, "idempotency_key": key, "sent": sent, "failed": failed,
                          "results": report}, indent=2, ensure_ascii=False))
    else:
        print(f"{sent} sent, {failed} failed (idempotency key {key})")
    return 1 if failed else 0
