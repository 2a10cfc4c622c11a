"""`signet`: the command-line client of the local agent.

Commands: info, tokens, watch, keys, keygen, csr, import-cert, unlock, lock,
sign FILE [-o OUT] (PDF -> PAdES, anything else -> FILE.p7s), verify FILE
[--sig FILE.p7s], enroll (with signet-server), agent --config FILE.  ``--json`` prints one JSON document
per result for scripts.  The PIN comes from --pin-file, --pin-env VAR,
$SIGNET_PIN or a prompt -- never from an argument.

Exit codes:
  0  success                       5  token locked / login required (FAILED_PRECONDITION)
  1  other error                   6  not permitted or usage limit reached
  2  bad command line              7  token or key not found
  3  signature(s) NOT valid        8  agent unreachable, or token removed (UNAVAILABLE)
  4  wrong PIN (UNAUTHENTICATED)   9  bad document or argument (INVALID_ARGUMENT)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from signet.v1 import agent_pb2, common_pb2

from . import client, enroll

EXIT = {grpc.StatusCode.UNAUTHENTICATED: 4, grpc.StatusCode.FAILED_PRECONDITION: 5,
        grpc.StatusCode.PERMISSION_DENIED: 6, grpc.StatusCode.RESOURCE_EXHAUSTED: 6,
        grpc.StatusCode.NOT_FOUND: 7, grpc.StatusCode.UNAVAILABLE: 8, grpc.StatusCode.INVALID_ARGUMENT: 9}
EXIT_INVALID_SIGNATURE = 3
ALGOS = client.ALGOS
SUBJECT_KEYS = {"CN": "common_name", "O": "organization_name", "OU": "organizational_unit_name", "C": "country_name",
                "L": "locality_name", "ST": "state_or_province_name", "SERIALNUMBER": "serial_number",
                "EMAIL": "email_address", "EMAILADDRESS": "email_address"}


class Progress:
    """A one-line progress bar on stderr for transfers over 1 MiB (only on a terminal, or when forced)."""

    def __init__(self, label: str, total: int, force: bool = False) -> None:
        self.label, self.total = label, total
        self.enabled = total > client.CHUNK and (force or sys.stderr.isatty())
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


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else text)


def _msg(m: Any) -> dict[str, Any]:
    return MessageToDict(m, preserving_proto_field_name=True)


def _sel(args: argparse.Namespace) -> agent_pb2.TokenSelector:
    if not args.token and not args.serial:
        raise SystemExit("signet: select the token with --token LABEL or --serial SERIAL (see `signet tokens`)")
    return client.selector(args.token, args.serial)


def _cred(args: argparse.Namespace, required: bool = False) -> agent_pb2.PinCredential | None:
    pin = client.read_pin(args.pin_file, args.pin_env, interactive=required or args.ask_pin)
    if pin is None:
        if required:
            raise SystemExit("signet: a PIN is needed: use --pin-file, --pin-env VAR, $SIGNET_PIN or a terminal")
        return None
    return agent_pb2.PinCredential(pin=pin)


def _subject(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, v = part.partition("=")
        if not sep or k.strip().upper() not in SUBJECT_KEYS:
            raise SystemExit(f"signet: cannot read subject part {part!r} (use CN=..,O=..,C=..,SERIALNUMBER=..)")
        out[SUBJECT_KEYS[k.strip().upper()]] = v.strip()
    return out


def _pem_or_der(path: str) -> list[bytes]:
    from asn1crypto import pem

    data = Path(path).read_bytes()
    return [der for _, _, der in pem.unarmor(data, multiple=True)] if pem.detect(data) else [data]


def is_pdf(path: Path) -> bool:
    with open(path, "rb") as f:
        return b"%PDF-" in f.read(1024)


# -- commands ------------------------------------------------------------------------------------------------------
def cmd_info(s: Any, args: argparse.Namespace) -> int:
    r = s.GetInfo(agent_pb2.GetInfoRequest())
    _out(args, _msg(r), f"agent {r.agent_version}  module {r.pkcs11_module}  you are {r.caller!r}")
    return 0


def cmd_tokens(s: Any, args: argparse.Namespace) -> int:
    r = s.ListTokens(agent_pb2.ListTokensRequest())
    lines = [f"{t.label:<24} serial {t.serial:<18} {t.manufacturer} {t.model}"
             + ("  [unlocked]" if t.serial in r.unlocked_serials else "")
             + ("  [PIN LOCKED]" if t.flags.pin_locked else "") for t in r.tokens]
    _out(args, _msg(r), "\n".join(lines) or "no token present")
    return 0


def cmd_watch(s: Any, args: argparse.Namespace) -> int:
    for ev in s.WatchTokens(agent_pb2.WatchTokensRequest()):
        kind = agent_pb2.WatchTokensResponse.Kind.Name(ev.kind).removeprefix("KIND_").lower()
        _out(args, _msg(ev), f"{kind:<9} {ev.token.label:<24} serial {ev.token.serial}")
        sys.stdout.flush()
    return 0


def cmd_keys(s: Any, args: argparse.Namespace) -> int:
    r = s.ListKeys(agent_pb2.ListKeysRequest(token=_sel(args), credential=_cred(args)))
    lines = [f"{k.key_id}  {common_pb2.KeyAlgorithm.Name(k.algorithm).removeprefix('KEY_ALGORITHM_'):<9} "
             f"{k.label:<20} {k.certificate_subject or '(no certificate)'}" for k in r.keys]
    data = _msg(r)
    for k in data.get("keys", []):
        k.pop("certificate_der", None)
    _out(args, data, "\n".join(lines) or "no keys")
    return 0


def cmd_keygen(s: Any, args: argparse.Namespace) -> int:
    r = s.GenerateKey(agent_pb2.GenerateKeyRequest(token=_sel(args), algorithm=ALGOS[args.algorithm],
                                                   label=args.label, credential=_cred(args)))
    _out(args, _msg(r), f"generated {args.algorithm} key {r.key.key_id} ({r.key.label})")
    return 0


def cmd_csr(s: Any, args: argparse.Namespace) -> int:
    from asn1crypto import pem

    r = s.CreateCertificateRequest(agent_pb2.CreateCertificateRequestRequest(
        token=_sel(args), key_id=args.key, subject=_subject(args.subject), dns_names=args.dns or [],
        emails=args.email or [], credential=_cred(args)))
    data = pem.armor("CERTIFICATE REQUEST", r.csr_der)
    if args.output:
        Path(args.output).write_bytes(data)
    _out(args, {"csr_pem": data.decode(), "output": args.output},
         f"wrote {args.output}" if args.output else data.decode().rstrip())
    return 0


def cmd_import_cert(s: Any, args: argparse.Namespace) -> int:
    certs = _pem_or_der(args.certificate)
    chain = [d for c in (args.chain or []) for d in _pem_or_der(c)] + certs[1:]
    s.ImportCertificate(agent_pb2.ImportCertificateRequest(token=_sel(args), key_id=args.key,
                                                           certificate_der=certs[0], chain_der=chain,
                                                           credential=_cred(args)))
    _out(args, {"imported": True, "chain": len(chain)}, f"certificate stored next to key {args.key}")
    return 0


def cmd_unlock(s: Any, args: argparse.Namespace) -> int:
    cred = _cred(args, required=True)
    assert cred is not None
    r = s.Unlock(agent_pb2.UnlockRequest(token=_sel(args), pin=cred.pin, ttl_seconds=args.ttl,
                                         max_signatures=args.max_signatures))
    _out(args, _msg(r), f"token {r.token_serial} unlocked until "
         f"{time.strftime('%H:%M:%S', time.localtime(r.expires_at))} for {r.signatures_left} signatures")
    return 0


def cmd_lock(s: Any, args: argparse.Namespace) -> int:
    r = s.Lock(agent_pb2.LockRequest(token=_sel(args)))
    _out(args, _msg(r), "locked" + (" (token logged out)" if r.logged_out else ""))
    return 0


def cmd_sign(s: Any, args: argparse.Namespace) -> int:
    src = Path(args.file)
    size = src.stat().st_size
    pdf = is_pdf(src) and not args.detached
    out = Path(args.output) if args.output else (
        src.with_name(src.stem + "-signed.pdf") if pdf else src.with_name(src.name + ".p7s"))
    up, down = Progress("upload", size, args.progress), Progress("download", size, args.progress)
    # small files travel inline (one message each way) when the agent supports it; large ones in chunks
    signing = client.DocumentSigning(_target(args), s)
    if pdf:
        h = agent_pb2.SignPdfHeader(token=_sel(args), key_id=args.key, credential=_cred(args), size=size,
                                    field_name=args.field or "", reason=args.reason or "",
                                    location=args.location or "", contact_info=args.contact or "",
                                    level=agent_pb2.PADES_LEVEL_B_T if args.tsa else agent_pb2.PADES_LEVEL_B_B,
                                    timestamp_url=args.tsa or "", file_name=src.name)
        if args.visible:
            page, x1, y1, x2, y2 = (float(v) for v in args.visible.split(","))
            h.appearance.CopyFrom(agent_pb2.Appearance(page=int(page), x1=x1, y1=y1, x2=x2, y2=y2))
        res = signing.to_file("pdf", h, src, out, up, down)
    else:
        h2 = agent_pb2.SignDetachedHeader(token=_sel(args), key_id=args.key, credential=_cred(args), size=size,
                                          timestamp_url=args.tsa or "", file_name=src.name)
        res = signing.to_file("detached", h2, src, out, up)
    data = {**_msg(res), "output": str(out), "format": "pades" if pdf else "cades-detached"}
    _out(args, data, f"signed {src} -> {out} ({res.output_size} bytes, sha256 {res.output_sha256[:16]}...)")
    return 0


def cmd_verify(s: Any, args: argparse.Namespace) -> int:
    src = Path(args.file)
    size = src.stat().st_size
    roots = [d for r in (args.trust or []) for d in _pem_or_der(r)]
    chunks = client.file_chunks(src, Progress("upload", size, args.progress))
    if args.sig:
        h = agent_pb2.VerifyDetachedHeader(size=size, signature_der=_pem_or_der(args.sig)[0], trust_roots_der=roots)
        r = s.VerifyDetached(client.upload("header", h, agent_pb2.VerifyDetachedRequest, chunks))
    else:
        h2 = agent_pb2.VerifyPdfHeader(size=size, trust_roots_der=roots)
        r = s.VerifyPdf(client.upload("header", h2, agent_pb2.VerifyPdfRequest, chunks))
    lines = [f"{'VALID' if r.valid else 'NOT VALID'}: {src}"]
    for sig in r.signatures:
        lines.append(f"  {sig.field_name or 'signature'}: {sig.signer_subject}  intact={sig.intact} "
                     f"trusted={sig.trusted} coverage={sig.coverage or '-'} "
                     f"modifications={sig.modification_level or '-'}")
        lines.extend(f"    problem: {p}" for p in sig.problems)
    data = _msg(r)
    data.pop("report_json", None)
    _out(args, data, "\n".join(lines))
    return 0 if r.valid else EXIT_INVALID_SIGNATURE


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

    def tok(sp: argparse.ArgumentParser, pin: bool = True) -> None:
        sp.add_argument("--token", help="token label")
        sp.add_argument("--serial", help="token serial (pins one physical token)")
        if pin:
            sp.add_argument("--pin-file", help="read the PIN from the first line of this file")
            sp.add_argument("--pin-env", metavar="VAR", help="read the PIN from this environment variable")
            sp.add_argument("--ask-pin", action="store_true", help="prompt for the PIN instead of using an unlock")

    sub.add_parser("info", help="agent version and how it sees you")
    sub.add_parser("tokens", help="list tokens")
    sub.add_parser("watch", help="print token insertions and removals until interrupted")
    tok(sub.add_parser("keys", help="list keys on a token"))
    sp = sub.add_parser("keygen", help="generate a key pair on a token")
    tok(sp)
    sp.add_argument("--algorithm", choices=sorted(ALGOS), default="p256")
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
    sp.add_argument("--max-signatures", type=int, default=0, help="0: policy maximum")
    tok(sub.add_parser("lock", help="end your unlock of a token"), pin=False)
    sp = sub.add_parser("sign", help="sign FILE: PDF -> PAdES, anything else -> detached CAdES (.p7s)")
    tok(sp)
    sp.add_argument("file")
    sp.add_argument("-o", "--output")
    sp.add_argument("--key", required=True, help="key id (signet keys)")
    sp.add_argument("--detached", action="store_true", help="a .p7s even for a PDF")
    sp.add_argument("--field")
    sp.add_argument("--reason")
    sp.add_argument("--location")
    sp.add_argument("--contact")
    sp.add_argument("--visible", metavar="PAGE,X1,Y1,X2,Y2", help="visible signature box in PDF points")
    sp.add_argument("--tsa", metavar="URL", help="RFC 3161 timestamp authority (PAdES B-T)")
    sp = sub.add_parser("verify", help="verify a signed PDF, or FILE against --sig FILE.p7s")
    sp.add_argument("file")
    sp.add_argument("--sig")
    sp.add_argument("--trust", action="append", help="extra trust anchor (PEM/DER, repeatable)")
    sp = sub.add_parser("enroll", help="enrol a new token key with signet-server (certificate stored on the token)")
    tok(sp)
    enroll.add_arguments(sp)
    sp = sub.add_parser("agent", help="run the agent (same as signet-agent)")
    sp.add_argument("--config", required=True)
    return p


COMMANDS = {"info": cmd_info, "tokens": cmd_tokens, "watch": cmd_watch, "keys": cmd_keys, "keygen": cmd_keygen,
            "csr": cmd_csr, "import-cert": cmd_import_cert, "unlock": cmd_unlock, "lock": cmd_lock,
            "sign": cmd_sign, "verify": cmd_verify,
            "enroll": lambda s, args: enroll.cmd_enroll(s, args, _sel(args), _cred(args))}


def _target(args: argparse.Namespace) -> client.Target:
    if args.tcp:
        return client.Target(tcp=args.tcp, cert=Path(args.cert) if args.cert else None,
                             key=Path(args.key_file) if args.key_file else None,
                             ca=Path(args.ca) if args.ca else None, server_name=args.server_name)
    return client.Target(socket=Path(args.socket)) if args.socket else client.Target.default()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "agent":
        from .main import main as agent_main

        return agent_main(["--config", args.config])
    try:
        return COMMANDS[args.command](client.stub(_target(args)), args)
    except grpc.RpcError as e:
        detail = client.error_detail(e)
        extra = f" [{detail.reason}]" if detail and detail.reason else ""
        if detail and detail.pin_tries_left >= 0 and e.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                                                   grpc.StatusCode.FAILED_PRECONDITION):
            extra += f" ({detail.pin_tries_left} PIN tries left)"
        print(f"signet: {e.code().name}: {e.details()}{extra}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": e.code().name, "message": e.details(),
                              "detail": _msg(detail) if detail else None}))
        return EXIT.get(e.code(), 1)
    except (OSError, ValueError) as e:
        print(f"signet: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
