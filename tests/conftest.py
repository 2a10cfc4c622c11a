"""Shared fixtures: a fresh SoftHSM token directory per test session.

SOFTHSM2_CONF is set before any test imports hsm, because SoftHSM reads it
once, at C_Initialize.  Tokens created later become visible in this process
only after ``module.reinitialize()``; ``make_token`` does that for you.
Child processes (agent/server under test) inherit SOFTHSM2_CONF.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SO_PIN = "12345678"
USER_PIN = "pin-Qx7k"  # never a substring of hex ids, serials or timestamps (a log check on "1234" failed by chance)

_session_dir = Path(tempfile.mkdtemp(prefix="signet-test-"))
_conf = _session_dir / "softhsm2.conf"
(_session_dir / "tokens").mkdir(mode=0o700)
_conf.write_text(
    (ROOT / "softhsm-config" / "softhsm2.conf.in").read_text().replace("@TOKENDIR@", str(_session_dir / "tokens"))
)
os.environ["SOFTHSM2_CONF"] = str(_conf)
_counter = itertools.count(1)


@dataclass(frozen=True)
class TestToken:
    label: str
    serial: str
    pin: str = USER_PIN
    so_pin: str = SO_PIN


def create_token(label: str, pin: str = USER_PIN, so_pin: str = SO_PIN) -> None:
    """Initialise a SoftHSM token in the session's token directory (no reinitialize)."""
    subprocess.run(
        [str(ROOT / "softhsm-config" / "init-token.sh"), str(_session_dir), label, so_pin, pin],
        check=True, stdout=subprocess.DEVNULL,
    )


def delete_token(label: str | None = None, *, serial: str | None = None) -> None:
    """Delete a token with softhsm2-util, by label or serial.

    SoftHSM quirk (measured): softhsm2-util removes the token's files, then the directory; a process
    enumerating slots meanwhile (an agent's token watcher, another test) re-creates the directory's
    ``generation`` file, and rmdir fails with "Could not delete the directory" although the token is
    gone.  Only that case is accepted: the leftover directory must hold no ``token.object``; it is removed.
    """
    selector = ["--token", label] if label is not None else ["--serial", str(serial)]
    p = subprocess.run(["softhsm2-util", "--delete-token", *selector], capture_output=True, text=True,
                       env={**os.environ, "SOFTHSM2_CONF": str(_conf)}, check=False)
    if p.returncode == 0:
        return
    m = re.search(r"Could not delete the directory: (\S+)", p.stderr)
    leftover = Path(m.group(1)) if m else None
    if leftover is None or leftover.parent != _session_dir / "tokens" or (leftover / "token.object").exists():
        raise AssertionError(f"softhsm2-util could not delete {selector}: {p.stdout}{p.stderr}")
    shutil.rmtree(leftover, ignore_errors=True)


@pytest.fixture(scope="session")
def softhsm_dir() -> Path:
    """The directory holding softhsm2.conf and tokens/ for this test session."""
    return _session_dir


@pytest.fixture(scope="session")
def hsm_module():
    from hsm import module

    return module.load()


@pytest.fixture(scope="session")
def make_token(hsm_module) -> Callable[..., TestToken]:
    """make_token(prefix="t") -> a new, initialised token visible in this process."""
    from hsm.tokens import find_token

    def _make(prefix: str = "t", pin: str = USER_PIN) -> TestToken:
        label = f"{prefix}-{os.getpid()}-{next(_counter)}"
        create_token(label, pin)
        hsm_module.reinitialize()
        return TestToken(label, find_token(hsm_module, label=label).serial, pin)

    return _make


@pytest.fixture
def hsm_root(tmp_path) -> Iterator:
    """An Hsm with its PIN-failure state in a per-test directory."""
    from hsm import Hsm

    yield Hsm(pin_state=tmp_path / "pins.json")


@pytest.fixture
def logged_in_token(make_token, hsm_root):
    """(TestToken, hsm.Token) logged in with the user PIN."""
    t = make_token("li")
    tok = hsm_root.token(serial=t.serial)
    tok.login(t.pin)
    yield t, tok
    tok.logout()


# -- stores: SQLite by default; PostgreSQL for the store contract suite, and for every test that takes its store
# from ``store_for_test`` / ``new_store`` when SIGNET_TEST_STORE=postgresql -----------------------------------------
STORE_KINDS = ("sqlite", "postgresql")
_pg_dbs = itertools.count(1)
_pg: list = []


def shared_pg_cluster():
    """The session's throwaway PostgreSQL cluster (scripts/pgcluster.py), started on first use and stopped at exit;
    fails, never skips, when it cannot start."""
    if not _pg:
        import atexit

        from scripts.pgcluster import PgCluster

        cluster = PgCluster()  # its own temporary directory: the session directory is private to this user
        atexit.register(cluster.stop)
        _pg.append(cluster.start())
    return _pg[0]


def store_for_test(tmp_path: Path, name: str = "server.db", kind: str | None = None):
    """A fresh, empty Store: SQLite ``tmp_path/name``, or a new database on the shared PostgreSQL cluster (kind
    "postgresql", or SIGNET_TEST_STORE=postgresql when kind is None)."""
    from server.store import open_store

    kind = kind or os.environ.get("SIGNET_TEST_STORE", "sqlite")
    if kind == "postgresql":
        return open_store(shared_pg_cluster().createdb(f"t{os.getpid()}_{next(_pg_dbs)}"))
    if kind == "sqlite":
        return open_store(str(tmp_path / name))
    raise ValueError(f"SIGNET_TEST_STORE must be sqlite or postgresql, not {kind!r}")


def reopen(store):
    """Another Store over the same database (as a restarted server opens it)."""
    from server.store import open_store

    return open_store(getattr(store, "url", None) or store.path)


@pytest.fixture(scope="session")
def pg_cluster():
    return shared_pg_cluster()


@pytest.fixture
def new_store(tmp_path) -> Iterator[Callable[..., object]]:
    """new_store(kind=None) -> a fresh, empty Store (see :func:`store_for_test`), closed afterwards."""
    opened: list = []

    def _new(kind: str | None = None):
        opened.append(store_for_test(tmp_path, f"store-{len(opened)}.sqlite", kind))
        return opened[-1]

    yield _new
    for s in opened:
        s.close()
