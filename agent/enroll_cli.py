"""`signet enroll`: its options and the command, over the running agent (which holds the token).

Command line::

    signet enroll --server HOST:PORT --server-ca tls-root.pem --person P_ID --token LABEL --send-code
    signet enroll --server HOST:PORT --server-ca tls-root.pem --person P_ID --token LABEL [--api HOST:PORT]
        [--pin-env VAR | --pin-file F] [--code-env VAR | --code-file F] [--tls-dir DIR] [--key-label L]

Without ``--code-env``/``--code-file`` the command asks the server to send a code and then
prompts for it on the terminal; one-time codes, like PINs, are never taken as arguments.  The flow itself
(:mod:`agent.enroll`, with cryptography and the server stubs) is imported only when the command runs, so the
rest of the CLI starts without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from signet.durable import write_atomic
from signet.secrets import read_secret

from .client import AgentClient, TokenRef


@dataclass(frozen=True)
class _NewKey:
    key_id: str
    public_key_der: bytes


class AgentToken:
    """:class:`EnrollToken` over the running agent (which holds the token), through :class:`AgentClient`."""

    def __init__(self, client: AgentClient, token: TokenRef, pin: str | None) -> None:
        self.client, self.token, self.pin = client, token, pin

    def generate_key(self, algorithm: str, label: str) -> _NewKey:
        key = self.client.generate_key(self.token, algorithm, label, self.pin)
        return _NewKey(key.key_id, key.public_key_der)

    def create_csr(self, key_id: str, subject: dict[str, str]) -> bytes:
        return self.client.certificate_request(self.token, key_id, subject, pin=self.pin)

    def import_certificate(self, key_id: str, der: bytes, chain: list[bytes] | None = None) -> None:
        self.client.import_certificate(self.token, key_id, der, list(chain or []), self.pin)

    def delete_key(self, key_id: str) -> None:
        self.client.delete_key(self.token, key_id, self.pin)


def cmd_enroll(client: AgentClient, args: argparse.Namespace, token: TokenRef, pin: str | None) -> int:
    """`signet enroll`: key on the token (through the agent), certified by signet-server, stored back.  With the
    CLI's ``--json``: one JSON object on stdout (``code_sent``, ``enrolled`` or ``error``), prose on stderr."""
    import getpass

    from .enroll import EnrollmentFailed, enroll
    from .serverlink import ServerLink, ServerRefused, ServerTarget

    as_json = bool(getattr(args, "json", False))
    target = ServerTarget(enroll=args.server, ca_pem=Path(args.server_ca).read_bytes(), api=args.api,
                          server_name=args.tls_server_name)
    with ServerLink(target) as link:
        try:
            code = read_secret(args.code_file, args.code_env, what="one-time code")
            code = code.strip() if code is not None else None
            if code is None and not args.send_code and not sys.stdin.isatty():
                raise SystemExit("signet enroll: no terminal to type the one-time code: send it with --send-code, "
                                 "then run again with --code-env VAR or --code-file F")
            state = _agent_server_dir(client)
            tls_dir = Path(args.tls_dir) if args.tls_dir else state
            if tls_dir is None:
                raise SystemExit("signet enroll: the agent does not say where its state is (a TCP connection?): "
                                 "give --tls-dir")
            pending = (state or tls_dir) / f"enrollment-code-{args.person}.json"
            code_id = args.code_id or ""
            if code is None or args.send_code:
                c = link.start_enrollment(args.person)
                code_id = c.code_id
                write_atomic(pending, json.dumps({"person_id": args.person, "code_id": c.code_id}).encode(), 0o600)
                sent = {"code_sent": {"person_id": args.person, "channel": c.channel, "code_id": c.code_id,
                                      "expires_at": f"{c.expires_at:%Y-%m-%dT%H:%M:%SZ}"}}
                if args.send_code and as_json:
                    print(json.dumps(sent))
                else:
                    print(f"enrollment code sent via {c.channel} (code id {c.code_id}); it expires at "
                          f"{c.expires_at:%Y-%m-%d %H:%M:%S} UTC", file=sys.stderr if as_json else sys.stdout)
                if args.send_code:
                    return 0
                code = getpass.getpass("one-time code: ").strip()
            if not code_id and pending.exists():
                code_id = str(json.loads(pending.read_text())["code_id"])
            if not code_id:
                raise SystemExit("signet enroll: which code? send one first (--send-code), or give --code-id")
            result = enroll(AgentToken(client, token, pin), link, args.person, code,
                            key_label=args.key_label, algorithm=args.algorithm, tls_dir=tls_dir, code_id=code_id,
                            token_label=token.label)
            pending.unlink(missing_ok=True)
        except ServerRefused as err:
            return _failed(as_json, str(err), err.code, err.reason)
        except EnrollmentFailed as err:
            return _failed(as_json, str(err), None, "ENROLLMENT_CHECK_FAILED")
    if as_json:
        print(json.dumps({"enrolled": {"person_id": args.person, "key_id": result.key_id,
                                       "key_label": result.key_label, "certificate_serial": result.serial,
                                       "subject": result.subject,
                                       "tls_dir": str(result.tls_dir) if result.tls_dir else None}}))
    else:
        print(f"enrolled key {result.key_id} ({result.key_label}): certificate {result.serial} for "
              f"{result.subject}; agent TLS files in {result.tls_dir}")
    return 0


def _failed(as_json: bool, message: str, status: str | None, reason: str) -> int:
    print(f"signet enroll: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "exit": 1, "status": status, "reason": reason}))
    return 1


def _agent_server_dir(client: AgentClient) -> Path | None:
    """The agent's own state directory (it tells local callers), so the TLS files live with the agent."""
    state = client.info().state_dir
    return Path(state) / "server" if state else None
