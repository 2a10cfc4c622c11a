"""The `signet` commands over the agent's API (the command line itself is agent.cli, which imports this module
only once the arguments are parsed, so `signet --help` loads neither gRPC stubs nor the client)."""


from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from signet.pemfiles import ders, read_certificates
from signet.secrets import SecretUnavailable, read_secret
from signet.wire import KEY_ALGORITHM_NAMES, detail_of, retry_after_of

from .cli_errors import BadInput, Usage
from .client import CHUNK, AgentClient, NoAgent, PdfOptions, Target, TokenRef

EXIT = {grpc.StatusCode.UNAUTHENTICATED: 4, grpc.StatusCode.FAILED_PRECONDITION: 5,
        grpc.StatusCode.PERMISSION_DENIED: 6, grpc.StatusCode.RESOURCE_EXHAUSTED: 6,
        grpc.StatusCode.NOT_FOUND: 7, grpc.StatusCode.UNAVAILABLE: 8, grpc.StatusCode.INVALID_ARGUMENT: 9,
        grpc.StatusCode.DEADLINE_EXCEEDED: 1}
EXIT_USAGE = 2
EXIT_INVALID_SIGNATURE = 3
EXIT_NO_AGENT = 8
EXIT_BAD_INPUT = 9
SUBJECT_KEYS = {"CN": "common_name", "O": "organization_name", "OU": "organizational_unit_name", "C": "country_name",
                "L": "locality_name", "ST": "state_or_province_name", "SERIALNUMBER": "serial_number",
                "EMAIL": "email_address", "EMAILADDRESS": "email_address"}


class Progress:
    """A one-line progress bar on stderr for transfers over 1 MiB (only on a terminal, or when forced)."""

    def __init__(self, label: str, total: int, force: bool = False) -> None:
        self.label, self.total = label, total
        self.enabled = total > CHUNK and (force or sys.stderr.isatty())
        self._last = 0.0

    def __call__(self, done: int) -> None:
        if not self.enabled or (time.monotonic() - self._last < 0.1 and done < self.total):
            return
        self._last = time.monotonic()
        frac = min(1.0, done / self.total) if self.total else 1.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {done / 1048576:8.1f} MiB")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _dict(m: Message) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict  # only for --json output: not at every start-up

    return MessageToDict(m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) if args.json else text)


def _token(args: argparse.Namespace, client: AgentClient | None = None) -> TokenRef:
    """--token / --serial, or the only token present."""
    if args.token or args.serial:
        return TokenRef(label=args.token or "", serial=args.serial or "")
    if client is not None:
        tokens = client.tokens().tokens
        if len(tokens) == 1:
            return TokenRef(serial=tokens[0].serial, label=tokens[0].label)
        if not tokens:
            raise Usage("no token is present: insert one (signet tokens lists them)")
    raise Usage("select the token with --token LABEL or --serial SERIAL (signet tokens lists them)")


def _pin(args: argparse.Namespace, required: bool = False) -> str | None:
    try:
        pin = read_secret(getattr(args, "pin_file", None), getattr(args, "pin_env", None), what="PIN",
                          prompt="PIN: " if required or getattr(args, "ask_pin", False) else None)
    except SecretUnavailable as e:
        raise Usage(str(e)) from None
    if pin is None and "SIGNET_PIN" in os.environ:
        pin = os.environ["SIGNET_PIN"]
    if pin is None and required:
        raise Usage("a PIN is needed: use --pin-file, --pin-env VAR, $SIGNET_PIN or a terminal")
    return pin


def _subject(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, v = part.partition("=")
        if not sep or k.strip().upper() not in SUBJECT_KEYS:
            raise Usage(f"cannot read subject part {part!r} (use CN=..,O=..,C=..,SERIALNUMBER=..)")
        out[SUBJECT_KEYS[k.strip().upper()]] = v.strip()
    return out


def _existing(path: str, what: str = "file") -> Path:
    p = Path(path)
    if not p.exists():
        raise BadInput(f"the {what} {path} does not exist")
    if not p.is_file():
        raise BadInput(f"the {what} {path} is not a regular file")
    return p


def is_pdf(path: Path) -> bool:
    with open(path, "rb") as f:
        return b"%PDF-" in f.read(1024)


# -- commands ------------------------------------------------------------------------------------------------------
def cmd_info(c: AgentClient, args: argparse.Namespace) -> int:
    r = c.info()
    _out(args, _dict(r), f"agent {r.agent_version}  module {r.pkcs11_module}  you are {r.caller!r}")
    return 0


def cmd_tokens(c: AgentClient, args: argparse.Namespace) -> int:
    r = c.tokens()
    lines = [f"{t.label:<24} serial {t.serial:<18} {t.manufacturer} {t.model}"
             + ("  [unlocked]" if t.serial in r.unlocked_serials else "")
             + ("  [PIN LOCKED]" if t.flags.pin_locked else "") for t in r.tokens]
    _out(args, _dict(r), "\n".join(lines) or "no token present")
    return 0


def cmd_watch(c: AgentClient, args: argparse.Namespace) -> int:
    for ev in c.watch():
        kind = "inserted" if ev.kind == ev.KIND_INSERTED else "removed"
        _out(args, _dict(ev), f"{kind:<9} {ev.token.label:<24} serial {ev.token.serial}")
        sys.stdout.flush()
    return 0


def _key_lines(keys: Any) -> list[str]:
    return [f"{k.key_id}  {KEY_ALGORITHM_NAMES.get(k.algorithm, '?'):<9} {k.label:<20} "
            f"{k.certificate_subject or '(no certificate)'}" for k in keys]


def cmd_keys(c: AgentClient, args: argparse.Namespace) -> int:
    r = c.keys(_token(args, c), _pin(args))
    data = _dict(r)
    for k in data.get("keys", []):
        k.pop("certificate_der", None)
    _out(args, data, "\n".join(_key_lines(r.keys)) or "no keys")
    return 0


def cmd_keygen(c: AgentClient, args: argparse.Namespace) -> int:
    key = c.generate_key(_token(args, c), args.algorithm, args.label, _pin(args))
    _out(args, _dict(key), f"generated {args.algorithm} key {key.key_id} ({key.label})")
    return 0


def cmd_csr(c: AgentClient, args: argparse.Namespace) -> int:
    from asn1crypto import pem

    der = c.certificate_request(_token(args, c), args.key, _subject(args.subject), dns=args.dns, emails=args.email,
                                pin=_pin(args))
    data = pem.armor("CERTIFICATE REQUEST", der)
    if args.output:
        from signet.durable import write_atomic

        write_atomic(args.output, data, 0o644)
    _out(args, {"csr_pem": data.decode(), "output": args.output},
         f"wrote {args.output}" if args.output else data.decode().rstrip())
    return 0


def cmd_import_cert(c: AgentClient, args: argparse.Namespace) -> int:
    certs = read_certificates(_existing(args.certificate, "certificate file"))
    chain = [d for f in (args.chain or []) for d in read_certificates(_existing(f, "chain file"))] + certs[1:]
    c.import_certificate(_token(args, c), args.key, certs[0], chain, _pin(args))
    _out(args, {"imported": True, "chain": len(chain)}, f"certificate stored next to key {args.key}")
    return 0


def cmd_unlock(c: AgentClient, args: argparse.Namespace) -> int:
    token = _token(args, c)
    r = c.unlock(token, _pin(args, required=True) or "", args.ttl, args.max_signatures)
    data = _dict(r)
    data.pop("grant", None)  # kept in the grant directory, never printed
    _out(args, data, f"token {r.token_serial} unlocked until "
         f"{time.strftime('%H:%M:%S', time.localtime(r.expires_at))} for {r.signatures_left} signature(s)")
    return 0


def cmd_lock(c: AgentClient, args: argparse.Namespace) -> int:
    r = c.lock(_token(args, c))
    _out(args, _dict(r), "locked" + (" (token logged out)" if r.logged_out else ""))
    return 0


def cmd_pin_reset(c: AgentClient, args: argparse.Namespace) -> int:
    token = _token(args, c)
    so_pin = None
    if args.so_pin_env or args.so_pin_file:
        try:
            so_pin = read_secret(args.so_pin_file, args.so_pin_env, what="SO PIN")
        except SecretUnavailable as e:
            raise Usage(str(e)) from None
    r = c.pin_reset(token, pin=None if so_pin else _pin(args, required=True), so_pin=so_pin)
    _out(args, _dict(r), f"token {r.token_serial}: the agent's PIN lock is cleared ({r.pin_tries_left} tries)")
    return 0


def signing_key(c: AgentClient, args: argparse.Namespace, token: TokenRef, pin: str | None) -> str:
    if args.key:
        return str(args.key)
    keys = [k for k in c.keys(token, pin).keys if k.certificate_der]
    if len(keys) == 1:
        return str(keys[0].key_id)
    raise Usage("the token holds " + (f"{len(keys)} keys with certificates" if keys else "no key with a certificate")
                + ": choose one with --key KEY_ID (signet keys lists them)")


def cmd_sign(c: AgentClient, args: argparse.Namespace) -> int:
    src = _existing(args.file)
    size = src.stat().st_size
    if size == 0:
        raise BadInput(f"{src} is empty (0 bytes); there is nothing to sign")
    pdf = is_pdf(src) and not args.detached
    if src.suffix.lower() == ".pdf" and not pdf and not args.detached:
        raise BadInput(f"{src} is named .pdf but is not a PDF; sign it as a file with --detached")
    out = Path(args.output) if args.output else (
        src.with_name(src.stem + "-signed.pdf") if pdf else src.with_name(src.name + ".p7s"))
    token = _token(args, c)
    pin = _pin(args)
    key = signing_key(c, args, token, pin)
    options = PdfOptions(field_name=args.field or "", reason=args.reason or "", location=args.location or "",
                         contact_info=args.contact or "", timestamp_url=args.tsa or "",
                         visible=_visible(args.visible) if args.visible else None)
    res = c.sign_file(src, out, pdf=pdf, token=token, key_id=key, pin=pin, options=options,
                      timestamp_url=args.tsa or "", upload_progress=Progress("upload", size, args.progress),
                      download_progress=Progress("download", size, args.progress) if pdf else None)
    data = {**_dict(res), "output": str(out), "format": "pades" if pdf else "cades-detached"}
    data.pop("content", None)  # written to the output file
    _out(args, data, f"signed {src} -> {out} ({res.output_size} bytes, sha256 {res.output_sha256[:16]}...)")
    return 0


def _visible(text: str) -> tuple[int, float, float, float, float]:
    try:
        page, x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise Usage("--visible takes PAGE,X1,Y1,X2,Y2 (numbers, PDF points)") from None
    return int(page), x1, y1, x2, y2


def verify_text(name: str, r: Any) -> str:
    """The human verdict: VALID or NOT VALID, and always the reasons, every problem and warning."""
    lines = [f"{'VALID' if r.valid else 'NOT VALID'}: {name}"]
    lines.extend(f"  problem: {p}" for p in r.problems)
    for sig in r.signatures:
        lines.append(f"  {sig.field_name or 'signature'}: {sig.signer_subject or '(unknown signer)'}  "
                     f"{'valid' if sig.valid else 'NOT valid'}  intact={sig.intact} trusted={sig.trusted} "
                     f"coverage={sig.coverage or '-'} modifications={sig.modification_level or '-'}"
                     + (f" policy={sig.signing_policy}" if sig.signing_policy else "")
                     + (" key=held on the Signet server (remote signing)" if sig.remote_key else ""))
        lines.extend(f"    problem: {p}" for p in sig.problems)
        lines.extend(f"    warning: {w}" for w in sig.warnings)
    lines.extend(f"  warning: {w}" for w in r.warnings)
    if not r.valid and len(lines) == 1:
        lines.append("  problem: no valid signature")
    return "\n".join(lines)


def cmd_verify(c: AgentClient, args: argparse.Namespace) -> int:
    src = _existing(args.file)
    roots = [d for f in (args.trust or []) for d in read_certificates(_existing(f, "trust root file"))]
    signature = None
    sig_path = Path(args.sig) if args.sig else None
    if sig_path is None and not is_pdf(src):
        sig_path = src.with_name(src.name + ".p7s")
        if not sig_path.exists():
            raise BadInput(f"{src} is not a PDF and {sig_path.name} is not beside it: give the signature with --sig")
    if sig_path is not None:
        signature = ders(_existing(str(sig_path), "signature file").read_bytes())[0]
    r = c.verify_file(src, signature=signature, trust_roots=roots, offline=args.offline,
                      progress=Progress("upload", src.stat().st_size, args.progress))
    data = _dict(r)
    data.pop("report_json", None)
    _out(args, data, verify_text(str(src), r))
    return 0 if r.valid else EXIT_INVALID_SIGNATURE


Command = Callable[[AgentClient, argparse.Namespace], int]
def _enroll_cli() -> Any:
    from . import enroll_cli  # loaded by the command that needs it: the server link costs every other command

    return enroll_cli


def _envelope_cli() -> Any:
    from . import envelope_cli

    return envelope_cli


COMMANDS: dict[str, Command] = {
    "info": cmd_info, "tokens": cmd_tokens, "watch": cmd_watch, "keys": cmd_keys, "keygen": cmd_keygen,
    "csr": cmd_csr, "import-cert": cmd_import_cert, "unlock": cmd_unlock, "lock": cmd_lock,
    "pin-reset": cmd_pin_reset, "sign": cmd_sign, "verify": cmd_verify,
    "enroll": lambda c, args: _enroll_cli().cmd_enroll(c, args, _token(args, c), _pin(args)),
    "inbox": lambda c, args: _envelope_cli().cmd(c, args, lambda: _token(args, c), lambda: _pin(args)),
    "envelope": lambda c, args: _envelope_cli().cmd(c, args, lambda: _token(args, c), lambda: _pin(args)),
    "contracts": lambda c, args: _envelope_cli().cmd(c, args, lambda: None, lambda: None),
    "evidence": lambda c, args: _envelope_cli().cmd(c, args, lambda: None, lambda: None),
}


def _target(args: argparse.Namespace) -> Target:
    if args.tcp:
        return Target(tcp=args.tcp, cert=Path(args.cert) if args.cert else None,
                      key=Path(args.key_file) if args.key_file else None,
                      ca=Path(args.ca) if args.ca else None, server_name=args.server_name)
    return Target(socket=Path(args.socket)) if args.socket else Target.default()


def _fail(args: argparse.Namespace, code: int, message: str, extra: dict[str, Any] | None = None) -> int:
    print(f"signet: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "exit": code, **(extra or {})}, ensure_ascii=False))
    return code


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed command line (see agent.cli); returns the exit code."""
    try:
        if args.command in ("inbox", "envelope", "contracts", "evidence") and getattr(args, "identity", None):
            direct: int = _envelope_cli().cmd(None, args, lambda: None, lambda: None)  # the server alone: no agent
            return direct
        with AgentClient(_target(args)) as client:
            return COMMANDS[args.command](client, args)
    except grpc.RpcError as e:
        code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = e.details() if isinstance(e, grpc.Call) else str(e)
        detail = detail_of(e)
        extra = f" [{detail.reason}]" if detail and detail.reason else ""
        if detail and detail.pin_tries_left >= 0 and code in (grpc.StatusCode.UNAUTHENTICATED,
                                                              grpc.StatusCode.FAILED_PRECONDITION):
            extra += f" ({detail.pin_tries_left} PIN tries left)"
        wait = retry_after_of(e)
        if wait is not None:
            extra += f" (retry in {wait:.0f} s)"
        return _fail(args, EXIT.get(code, 1), f"{code.name}: {details}{extra}",
                     {"status": code.name, "detail": _dict(detail) if detail else None, "retry_after": wait})
    except Usage as e:  # envelope_cli.EnvelopeUsage too
        return _fail(args, EXIT_USAGE, str(e))
    except BadInput as e:  # envelope_bulk.BadRows too
        return _fail(args, EXIT_BAD_INPUT, str(e))
    except NoAgent as e:
        return _fail(args, EXIT_NO_AGENT, str(e))
    except (OSError, ValueError) as e:
        return _fail(args, 1, str(e))
    except KeyboardInterrupt:
        return 130
