"""Findings by signature, and the ones already reported (tolerated until fixed, so that CI stays deterministic).

A finding's *signature* names the breach and where it happened, not the input: the Finding's key (or the
exception type) and the innermost frame of our product code (``path:function``, no line numbers), following
an INTERNAL status back to the exception the servicer turned into it.  Every input with one signature is the
same bug; a long run reports each signature once (the driver passes those it has seen in
``SIGNET_FUZZ_SEEN``) and goes on fuzzing.

:data:`KNOWN` lists the findings reported to the lead, each with its reproduction test in
tests/fuzz/test_findings.py (``xfail(strict=True)``).  A target treats a known signature as no finding, unless
``SIGNET_FUZZ_STRICT=1`` (``--replay`` sets it).  When a fix lands its xfail test passes and fails the suite
(strict): then delete the test's marker and the entry here.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import traceback
from pathlib import Path

from .env import ROOT
from .fakes import Aborted, Finding

SEEN_ENV = "SIGNET_FUZZ_SEEN"  # newline-separated signatures this run has reported already
STRICT_ENV = "SIGNET_FUZZ_STRICT"
_PRODUCT = tuple(str(ROOT / p) + os.sep for p in ("formats", "agent", "server", "hsm", "proto/signet"))

# signature (an fnmatch pattern) -> the reproduction test (tests/fuzz/test_findings.py) that documents it
KNOWN: dict[str, str] = {
    # F1-F11 are fixed; their reproductions in test_findings.py now guard against their return
}


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f.filename.startswith(_PRODUCT)]
    if ours:
        return f"{Path(ours[-1].filename).relative_to(ROOT).as_posix().removeprefix('proto/')}:{ours[-1].name}"
    return f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "?"


def underlying(e: BaseException) -> BaseException | None:
    """The root cause behind a Finding or an aborted call (the deepest exception of the chain that is neither),
    if any: e.g. the token or parser error under the JobFailed a servicer turned into INTERNAL."""
    seen: set[int] = set()
    x: BaseException | None = e
    last = None
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if not isinstance(x, (Finding, Aborted)):
            last = x
        x = x.__cause__ if x.__cause__ is not None else (None if x.__suppress_context__ else x.__context__)
    return last


def signature(e: BaseException) -> str:
    cause = underlying(e)
    if isinstance(e, Finding):
        return f"{e.key}: {type(cause).__name__} in {_where(cause)}" if cause is not None else e.key
    return f"{type(e).__name__} in {_where(e)}"


@functools.cache
def _seen() -> frozenset[str]:
    return frozenset(s for s in os.environ.get(SEEN_ENV, "").split("\n") if s)


def known(sig: str) -> str | None:
    """The reproduction test of a known finding with this signature, if any."""
    return next((test for pattern, test in KNOWN.items() if fnmatch.fnmatchcase(sig, pattern)), None)


def tolerated(sig: str) -> bool:
    if sig in _seen():
        return True
    return known(sig) is not None and not os.environ.get(STRICT_ENV)
