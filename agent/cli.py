"""`signet`: the command-line client of the local agent.

Commands: info, tokens, watch, keys, keygen, csr, import-cert, unlock, lock, pin-reset, sign FILE [-o OUT]
(PDF -> PAdES, anything else -> FILE.p7s), verify FILE [--sig FILE.p7s] [--offline], enroll (with
signet-server), agent --config FILE.  ``--json`` prints one JSON document per result for scripts.  The PIN
comes from --pin-file, --pin-env VAR, $SIGNET_PIN or a prompt -- never from an argument.  `signet unlock`
keeps the grant handle for later commands in $SIGNET_GRANT_DIR (default $XDG_RUNTIME_DIR/signet/grants).

Exit codes:
  0  success                       5  token locked / login required (FAILED_PRECONDITION)
  1  other error                   6  not permitted, declined, busy or usage limit reached
  2  bad command line              7  token or key not found
  3  signature(s) NOT valid        8  agent unreachable, or token removed (UNAVAILABLE)
  4  wrong PIN (UNAUTHENTICATED)   9  bad document or argument (INVALID_ARGUMENT), missing file
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from signet.keynames import KEY_ALGORITHM_CHOICES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket", help="agent socket (default $SIGNET_AGENT_SOCKET or $XDG_RUNTIME_DIR/signet/agent.sock)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="reach the agent over mutual TLS instead")
    p.add_argument("--cert", help="client certificate (PEM) for --tcp")
    p.add_argument("--key-file", help="client private key (PEM) for --tcp")
    p.add_argument("--ca", help="CA certificate (PEM) that issued the agent's certificate")
    p.add_argument("--server-name", help="expected agent certificate name, when it differs from HOST")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--progress", action="store_true", help="show progress bars even when stderr is not a terminal")
    sub = p.add_subparsers(dest="command", required=True)
    _token_commands(sub)
    _document_commands(sub)
    sp = sub.add_parser("enroll", help="enrol a new token key with signet-server (certificate stored on the token)")
    _tok(sp)
    _enroll_arguments(sp)
    from .envelope_args import add_arguments as envelope_arguments

    envelope_arguments(sub, _tok)
    from .envelope_args import add_contract_arguments

    add_contract_arguments(sub)
    from .evidence_cli import add_arguments as evidence_arguments

    evidence_arguments(sub)
    sp = sub.add_parser("agent", help="run the agent (same as signet-agent)")
    sp.add_argument("--config", required=True)
    return p


def _tok(sp: argparse.ArgumentParser, pin: bool = True) -> None:
    sp.add_argument("--token", help="token label (default: the only token present)")
    sp.add_argument("--serial", help="token serial (pins one physical token)")
    if pin:
        sp.add_argument("--pin-file", help="read the PIN from the first line of this file (mode 0600)")
        sp.add_argument("--pin-env", metavar="VAR", help="read the PIN from this environment variable")
        sp.add_argument("--ask-pin", action="store_true", help="prompt for the PIN instead of using an unlock")


def _token_commands(sub: Any) -> None:
    tok = _tok
    sub.add_parser("info", help="agent version and how it sees you")
    sub.add_parser("tokens", help="list tokens")
    sub.add_parser("watch", help="print token insertions and removals until interrupted")
    tok(sub.add_parser("keys", help="list keys on a token"))
    sp = sub.add_parser("keygen", help="generate a key pair on a token")
    tok(sp)
    sp.add_argument("--algorithm", choices=sorted(KEY_ALGORITHM_CHOICES), default="p256")
    sp.add_argument("--label", required=True)
    sp = sub.add_parser("csr", help="PKCS#10 request signed by a token key")
    tok(sp)
    sp.add_argument("--key", required=True, help="key id (signet keys)")
    sp.add_argument("--subject", required=True, help='e.g. "CN=Alice Example,O=Example,C=CN"')
    sp.add_argument("--dns", action="append")
    sp.add_argument("--email", action="append")
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("import-cert", help="store a certificate (and chain) next to its key")
    tok(sp)
    sp.add_argument("--key", required=True)
    sp.add_argument("certificate")
    sp.add_argument("--chain", action="append", help="CA certificate file (repeatable)")
    sp = sub.add_parser("unlock", help="log a token in for a bounded time and number of signatures")
    tok(sp)
    sp.add_argument("--ttl", type=int, default=0, help="seconds (0: policy maximum)")
    sp.add_argument("--max-signatures", type=int, default=0, help="0: policy maximum (1 by default: one document)")
    tok(sub.add_parser("lock", help="end your unlock of a token"), pin=False)
    sp = sub.add_parser("pin-reset", help="admin: clear the agent's own wrong-PIN lock of a token")
    tok(sp)
    sp.add_argument("--so-pin-env", metavar="VAR", help="prove the SO PIN (from this variable) instead of the PIN")
    sp.add_argument("--so-pin-file", help="prove the SO PIN (first line of this file) instead of the PIN")


def _document_commands(sub: Any) -> None:
    tok = _tok
    sp = sub.add_parser("sign", help="sign FILE: PDF -> PAdES, anything else -> detached CAdES (.p7s)")
    tok(sp)
    sp.add_argument("file")
    sp.add_argument("-o", "--output")
    sp.add_argument("--key", help="key id (default: the token's only key with a certificate)")
    sp.add_argument("--detached", action="store_true", help="a .p7s even for a PDF")
    sp.add_argument("--field")
    sp.add_argument("--reason")
    sp.add_argument("--location")
    sp.add_argument("--contact")
    sp.add_argument("--visible", metavar="PAGE,X1,Y1,X2,Y2", help="visible signature box in PDF points")
    sp.add_argument("--tsa", metavar="URL", help="RFC 3161 timestamp authority (PAdES B-T; on the agent's allow-list)")
    sp = sub.add_parser("verify", help="verify a signed PDF, or FILE against --sig (default FILE.p7s beside it)")
    sp.add_argument("file")
    sp.add_argument("--sig")
    sp.add_argument("--trust", action="append", help="extra trust anchor (PEM/DER, repeatable)")
    sp.add_argument("--offline", action="store_true", help="do not fetch revocation data (the report says so)")


def _enroll_arguments(sp: argparse.ArgumentParser) -> None:
    """The `signet enroll` options (the token selection and PIN options are added by _tok)."""
    sp.add_argument("--server", required=True, help="HOST:PORT of signet-server's enrollment listener")
    sp.add_argument("--server-ca", required=True, metavar="PEM",
                    help="signet-server's TLS root certificate (its tls/ca.pem)")
    sp.add_argument("--person", required=True, help="your person id (from the operator who registered you)")
    sp.add_argument("--api", help="HOST:PORT of the server's API listener (recorded for later calls)")
    sp.add_argument("--tls-server-name", help="TLS name to expect when it differs from HOST")
    sp.add_argument("--send-code", action="store_true", help="only ask the server to send an enrollment code")
    sp.add_argument("--code-env", metavar="VAR", help="read the one-time code from this environment variable")
    sp.add_argument("--code-file", help="read the one-time code from the first line of this file (mode 0600)")
    sp.add_argument("--code-id", help="the code_id --send-code printed (default: the one it kept for this person)")
    sp.add_argument("--tls-dir", help="where to keep the agent's TLS client files (default: the agent's state "
                                      "directory/server)")
    sp.add_argument("--key-label", help="label of the new key (default: signet-PERSON)")
    sp.add_argument("--algorithm", choices=sorted(KEY_ALGORITHM_CHOICES), default="p256")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "agent":  # the agent runs in its own process image: this client never loads PKCS#11
        argv = [sys.executable, "-m", "agent.main", "--config", args.config]
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module, no shell
    if args.command == "verify-evidence":  # offline: no agent, no client
        from .evidence_cli import run as verify_evidence

        return verify_evidence(args)
    from .commands import run  # the client and the API stubs, once there is something to do

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
