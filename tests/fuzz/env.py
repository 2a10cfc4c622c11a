"""The fuzz process's private SoftHSM directory and tokens (like tests/conftest.py, without pytest).

``SOFTHSM2_CONF`` must be set before anything loads the PKCS#11 module, so :func:`softhsm` runs before the
targets import ``hsm``.  The directory is ``$SIGNET_FUZZ_WORKDIR`` when the driver gives one (it removes it
afterwards: libFuzzer ends the process with ``exit()``, so no Python clean-up would run here), else a new
temporary directory.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKDIR_ENV = "SIGNET_FUZZ_WORKDIR"
SO_PIN = "12345678"
USER_PIN = "pin-Qx7k"


@functools.cache
def workdir() -> Path:
    given = os.environ.get(WORKDIR_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="signet-fuzz-"))


@functools.cache
def softhsm() -> Path:
    """softhsm2.conf in the work directory, exported as SOFTHSM2_CONF (idempotent)."""
    base = workdir() / "softhsm"
    tokens = base / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = base / "softhsm2.conf"
    template = (ROOT / "softhsm-config" / "softhsm2.conf.in").read_text()
    conf.write_text(template.replace("@TOKENDIR@", str(tokens)))
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return base


def new_token(label: str, pin: str = USER_PIN) -> str:
    """Initialise a token, make it visible to this process; returns its serial."""
    base = softhsm()
    subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(base), label, SO_PIN, pin],
                   check=True, stdout=subprocess.DEVNULL)
    from hsm import module
    from hsm.tokens import find_token

    mod = module.load()
    mod.reinitialize()
    return str(find_token(mod, label=label).serial)
