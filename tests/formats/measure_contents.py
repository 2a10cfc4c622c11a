"""Measure (by hand, not a test) what verifying a PDF with a 50 MB signature /Contents costs: time and peak memory.

    .venv/bin/python -m tests.formats.measure_contents [hex_digits]

Each run is a fresh child process, so its peak RSS (ru_maxrss) is the verification's alone.  Three figures:
the pre-scan on its own, verify_pdf (refused by the pre-scan), and, for comparison, pyHanko reading the same
signature field without the pre-scan (what verify_pdf did before; about 4.4 GiB and 55 s on this machine kind
for 50 MB, so it is skipped unless --unguarded is given).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[1])
mode, path = sys.argv[2], sys.argv[3]
from formats import prescan  # imports and the trust root first: the clock measures the work only
from formats.errors import InvalidDocument
from formats.verify import verify_pdf
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from tests.formats import minipki
root = minipki.MiniCA("Root", None).root_der
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
outcome = "ok"
if mode == "prescan":
    try:
        with open(path, "rb") as f:
            prescan.scan(f)
    except InvalidDocument as e:
        outcome = "refused: " + str(e)[:80]
elif mode == "verify":
    try:
        verify_pdf(path, [root], revocation="offline")
    except InvalidDocument as e:
        outcome = "refused: " + str(e)[:80]
else:  # what verify_pdf did before the pre-scan: pyHanko parses the signature dictionary
    with open(path, "rb") as f:
        r = PdfFileReader(f, strict=False)
        for _name, value, _field in enumerate_sig_fields(r, filled_status=True):
            value.get_object()["/Contents"]
ms = (time.perf_counter() - t) * 1000
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{mode:10} {ms:10.1f} ms  peak RSS {rss:8.1f} MiB (after imports {base_rss:.1f} MiB)  {outcome}")
"""


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    from tests.formats import hostile

    digits = int(next((a for a in sys.argv[1:] if a.isdigit()), 50_000_000))
    modes = ["prescan", "verify"] + (["unguarded"] if "--unguarded" in sys.argv else [])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.pdf"
        hostile.write_huge_contents(path, digits)
        print(f"{path.stat().st_size:,} bytes, /Contents of {digits:,} hex digits")
        for mode in modes:
            subprocess.run([sys.executable, "-c", CHILD, str(root), mode, str(path)], check=True)


if __name__ == "__main__":
    main()
