"""One fuzz target under atheris: ``python -m tests.fuzz.run TARGET [libFuzzer flags] [corpus dirs]``.

Normally started by :mod:`tests.fuzz.driver` (``make fuzz``, tests/fuzz/test_fuzz.py), which sets the work
directory, the corpus directories and the artifact prefix, and reads the figures back from the output.  The
packages a target's input reaches (``Target.instrument``) are instrumented for coverage; libFuzzer flags pass
through.  With ``SIGNET_FUZZ_SHALLOW=1`` only our own packages are instrumented: instrumenting pyHanko and
asn1crypto at import costs 5-15 s, more than the CI-sized run fuzzes.
``--replay FILE...`` runs the target once per file without atheris (a finding's traceback, plainly).
"""

from __future__ import annotations

import os
import sys

SHALLOW_ENV = "SIGNET_FUZZ_SHALLOW"  # set: instrument our packages only (quick start for the CI-sized run)
OURS = {"formats", "agent", "server", "hsm", "signet"}


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(f"usage: {argv[0]} TARGET [libFuzzer flags] [corpus dirs] | TARGET --replay FILE...")
    name = argv[1]
    from tests.fuzz import env

    env.softhsm()  # before anything loads the PKCS#11 module
    if argv[2:3] == ["--replay"]:
        from pathlib import Path

        from tests.fuzz.known import STRICT_ENV

        os.environ[STRICT_ENV] = "1"  # a replay shows known findings too
        from tests.fuzz.targets import TARGETS, prepare

        prepare(name)
        for path in argv[3:]:
            TARGETS[name].fn(Path(path).read_bytes())
            print(f"{path}: no finding")
        return
    import logging

    import atheris

    # the product logs every refusal; millions of them would bury libFuzzer's figures (--replay keeps them).
    # Loggers the targets listen to (tests.fuzz.targets._swallowed) set their own level.
    logging.getLogger().setLevel(logging.CRITICAL + 1)
    from tests.fuzz.targets import TARGETS, prepare  # imports none of the packages under test

    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; targets: {', '.join(TARGETS)}")
    packages = [p for p in TARGETS[name].instrument if not os.environ.get(SHALLOW_ENV) or p.split(".")[0] in OURS]
    with atheris.instrument_imports(include=packages):
        prepare(name)
    atheris.Setup([argv[0], *argv[2:]], TARGETS[name].fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
