"""16 threads x 1,000 signatures with key searches, session churn, login churn and reinitialisation: no crash, no error.

The load runs in a child process (stress_main.py): a SIGSEGV there fails this test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

THREADS, SIGS = 16, 1000


def test_sixteen_threads_sign_without_crash_or_error(make_token) -> None:
    main, churn1, churn2 = make_token("stress"), make_token("churn"), make_token("churn")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STRESS_PIN": main.pin, "STRESS_TOKEN": main.label,
           "STRESS_CHURN_TOKENS": f"{churn1.label},{churn2.label}",
           "STRESS_THREADS": str(THREADS), "STRESS_SIGS": str(SIGS)}
    res = subprocess.run([sys.executable, "-m", "tests.hsm.stress_main"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != -signal.SIGSEGV, "the stress load crashed with SIGSEGV:\n" + res.stderr[-4000:]
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    counts = json.loads(res.stdout.strip().splitlines()[-1])
    assert counts["errors"] == 0
    assert counts["signatures"] == counts["expected"] == THREADS * SIGS
    assert counts["verified"] == THREADS * (SIGS // 8)
    assert counts["searches"] == THREADS * (SIGS // 50)
    assert counts["logins"] == 2 * 60
    assert counts["reinits"] >= 1
