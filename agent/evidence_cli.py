"""`signet verify-evidence BUNDLE.zip --trust ROOT.pem [--json]`: check an evidence bundle offline.

No agent, no server, no network: the bundle and the trust root(s) only (:mod:`agent.evidence` says what is
checked).  Prints one line per check (✓ or ✗, its name, its detail; for a failure, what it breaks), or with
``--json`` one JSON object (``ok``, ``envelope_id``, ``checks``).  Exit 0 when every check passes, 3 when the
bundle fails one (the CLI's "not valid"), 2 for a command line that cannot be carried out (a missing bundle or
trust file, a trust file without a certificate)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli_errors import Usage

EXIT_OK = 0
EXIT_NOT_VALID = 3  # as `signet verify` for a signature that is not valid (README: exit codes)
EXIT_USAGE = 2


def add_arguments(sub: Any) -> None:
    """The `signet verify-evidence` subcommand (light: imports nothing heavy)."""
    sp = sub.add_parser("verify-evidence", help="check an evidence bundle (zip) offline under the signing root")
    sp.add_argument("bundle", help="the evidence bundle (signet-evidence-1 zip)")
    sp.add_argument("--trust", action="append", required=True, metavar="ROOT.pem",
                    help="the Signet signing root (PEM or DER; repeatable); certs/ inside the bundle is never trusted")
    sp.add_argument("--json", dest="evidence_json", action="store_true", help="machine-readable output")
    sp.add_argument("--seal-policy", action="append", metavar="OID",
                    help="certificate policy of the platform seal (default: Signet's 1.3.6.1.4.1.59541.1.3)")


def _trust_roots(paths: list[str]) -> list[bytes]:
    from asn1crypto import x509

    from signet.pemfiles import read_certificates

    roots: list[bytes] = []
    for p in paths:
        try:
            ders = read_certificates(p)
        except OSError as e:
            raise Usage(f"the trust root {p} cannot be read ({e.strerror or type(e).__name__})") from None
        for der in ders:
            try:
                x509.Certificate.load(der).native  # noqa: B018 - parses it now
            except (ValueError, TypeError, KeyError, IndexError, OverflowError):
                raise Usage(f"{p} is not a certificate (PEM or DER)") from None
            roots.append(der)
    if not roots:
        raise Usage("no trust root: give the Signet signing root with --trust ROOT.pem")
    return roots


def render(report: Any) -> str:
    """The report as text: one line per check, failures followed by what they break."""
    lines = []
    for c in report.checks:
        lines.append(f"{'✓' if c.ok else '✗'} {c.name}: {c.detail}")
        if not c.ok and c.breaks:
            lines.append(f"    breaks: {c.breaks}")
    lines.append("evidence bundle OK: every check passed" if report.ok
                 else f"evidence bundle NOT valid: {len(report.failed())} check(s) failed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Carry out `signet verify-evidence`; returns the exit code."""
    as_json = bool(getattr(args, "json", False) or getattr(args, "evidence_json", False))
    try:
        bundle = Path(args.bundle)
        if not bundle.is_file():
            raise Usage(f"the bundle {args.bundle} does not exist or is not a file")
        roots = _trust_roots(args.trust or [])
        from .evidence import SEAL_POLICY, verify_bundle

        report = verify_bundle(bundle, roots, seal_policies=tuple(args.seal_policy or (SEAL_POLICY,)))
    except Usage as e:
        print(f"signet: {e}", file=sys.stderr)
        if as_json:
            print(json.dumps({"error": str(e), "exit": EXIT_USAGE}, ensure_ascii=False))
        return EXIT_USAGE
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(render(report))
    return EXIT_OK if report.ok else EXIT_NOT_VALID


__all__ = ["add_arguments", "render", "run"]
