"""Archive throughput (MB/s): ``Archive.put`` (hash, data key, token wrap, AES-256-GCM, durable write, key row) and
``Archive.get`` (key row, read, token unwrap, AES-256-GCM, hash check) for 1 MiB and 16 MiB objects, next to raw
AES-GCM (``AESGCM.encrypt``/``decrypt`` of the same bytes, no I/O) measured in the same alternating rounds.

Target: >= 0.8x of raw AES-GCM.  The parts are measured too, so the table says where the time goes: SHA-256 of
the object (the object id on put, the id check on get: required by the BlobStore contract), a durable write of
the same size (temp file, fsync, link, directory fsync), and one token wrap / unwrap.  Uses its own SoftHSM token
directory and store under a temp dir (on the same file system as the rest of /tmp).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import Report, alternate

ROOT = Path(__file__).resolve().parent.parent
PIN, SO_PIN, LABEL = "1234", "12345678", "bench-archive"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SIZES = ((64 << 10, 128), (1 << 20, 32), (16 << 20, 4))  # (object size, objects per round)
MB = 1e6


def _softhsm(state: Path) -> None:
    subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                   check=True, capture_output=True, text=True)
    os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")  # before hsm/ loads the module


def _mbps(size: int, n: int, fn: Callable[[int], object]) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return size * n / (time.perf_counter() - t) / MB


def _measure(archive: Any, report: Report, scratch: Path, size: int, n: int) -> None:
    """One object size: raw AES-GCM, archive put/get and the parts, in alternating rounds."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from signet.durable import write_atomic

    name = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
    base = bytearray(os.urandom(size))
    aead, nonce, aad = AESGCM(AESGCM.generate_key(256)), os.urandom(12), os.urandom(60)
    plain = bytes(base)
    sealed = aead.encrypt(nonce, plain, aad)
    ids: list[str] = []
    counter = itertools.count(1)

    def put() -> float:
        batch = []
        for _ in range(n):  # distinct bytes per put (a put of stored bytes is a no-op); made before the clock starts
            struct.pack_into(">Q", base, 0, next(counter))
            batch.append(bytes(base))
        t = time.perf_counter()
        ids.extend(archive.put("bench-org", b) for b in batch)
        return size * n / (time.perf_counter() - t) / MB

    def get() -> float:
        recent = ids[-n:]
        return _mbps(size, n, lambda i: archive.get("bench-org", recent[i]))

    def durable_write() -> float:
        scratch.mkdir(exist_ok=True)
        return _mbps(size, n, lambda i: write_atomic(scratch / str(next(counter)), sealed, overwrite=False))

    variants: dict[str, Callable[[], float]] = {
        "raw encrypt": lambda: _mbps(size, n, lambda i: aead.encrypt(nonce, plain, aad)),
        "put": put,
        "raw decrypt": lambda: _mbps(size, n, lambda i: aead.decrypt(nonce, sealed, aad)),
        "get": get,
        "sha256": lambda: _mbps(size, n, lambda i: hashlib.sha256(plain).digest()),
        "durable write": durable_write,
    }
    runs = alternate(variants, ROUNDS)
    enc, dec = f"{name} raw AES-GCM encrypt", f"{name} raw AES-GCM decrypt"
    report.add(enc, runs["raw encrypt"], "MB/s")
    report.add(f"{name} archive put", runs["put"], "MB/s", baseline=enc)
    report.add(dec, runs["raw decrypt"], "MB/s")
    report.add(f"{name} archive get", runs["get"], "MB/s", baseline=dec)
    report.add(f"{name} part: SHA-256", runs["sha256"], "MB/s", baseline=enc)
    report.add(f"{name} part: durable write", runs["durable write"], "MB/s", baseline=enc)
    shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-archive-"))
    try:
        _softhsm(state / "softhsm")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from hsm import Hsm
        from server.archive import Archive
        from server.store import open_store

        tok = Hsm(pin_state=state / "pins.json").token(label=LABEL)
        tok.login(PIN)
        tok.generate_kek("bench-kek")
        store = open_store(str(state / "archive.sqlite"))
        archive = Archive(tok, store, state / "content", kek_label="bench-kek")
        report = Report("archive")
        for size, n in SIZES:
            _measure(archive, report, state / "scratch", size, n)
        key = AESGCM.generate_key(256)
        wrapped = tok.wrap_key("bench-kek", key)

        def per_call_ms(fn: Callable[[], object], k: int = 200) -> float:
            t = time.perf_counter()
            for _ in range(k):
                fn()
            return (time.perf_counter() - t) / k * 1000

        report.add("token wrap (one data key)", [per_call_ms(lambda: tok.wrap_key("bench-kek", key))
                                                 for _ in range(ROUNDS)], "ms")
        report.add("token unwrap (one data key)", [per_call_ms(lambda: tok.unwrap_key(wrapped))
                                                   for _ in range(ROUNDS)], "ms")
        tok.logout()
        store.close()
        report.finish()
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
