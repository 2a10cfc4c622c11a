"""Fetch axe-core (the accessibility checker the browser tests run in each page) from the npm registry, once.

The version and the tarball's SHA-512 are pinned here (npm's ``dist.integrity``); the file lands in
``.cache/axe-core/axe.min.js`` (git-ignored).  No npm needed: the tarball is read with the standard library.

    python -m scripts.fetch_axe
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "4.14.1"
URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / ".cache" / "axe-core" / f"axe-{VERSION}.min.js"


def fetch() -> Path:
    if TARGET.exists():
        return TARGET
    with urllib.request.urlopen(URL, timeout=60) as resp:
        data = resp.read()
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != INTEGRITY:
        raise SystemExit(f"axe-core {VERSION}: the tarball's SHA-512 is not the pinned one ({got})")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile("package/axe.min.js")
        if member is None:
            raise SystemExit("axe-core tarball without package/axe.min.js")
        script = member.read()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    tmp = TARGET.with_suffix(".tmp")
    tmp.write_bytes(script)
    tmp.replace(TARGET)
    return TARGET


if __name__ == "__main__":
    print(fetch().relative_to(ROOT))
    sys.exit(0)
