"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl in a temporary directory, on a Unix
socket only, fsync on, C collation, stopped (and its files removed) at the end.

PostgreSQL refuses to run as root: when the tests run as root, the cluster runs as the unprivileged ``postgres``
user of Debian's package (or ``nobody``), through ``runuser``.  Nothing is skipped when PostgreSQL cannot
start: :class:`PgCluster` raises with the reason and the server's log.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql; "
                           "`make test` installs it)")
    return candidates[-1]


class PgCluster:
    """``start()`` -> a running cluster with database ``signet`` owned by role ``signet``; ``url(db)``."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base or tempfile.mkdtemp(prefix="signet-pg-"))
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.log = self.base / "server.log"
        self._user: str | None = None
        self.running = False

    def _as_owner(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else list(argv)

    def _run(self, *argv: str) -> None:
        p = subprocess.run(self._as_owner(*argv), capture_output=True, text=True, timeout=120, check=False)
        if p.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{Path(argv[0]).name} failed ({p.returncode}): {p.stderr.strip()}\n{log}")

    def start(self) -> PgCluster:
        if os.geteuid() == 0:
            for user in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(user)
                except KeyError:
                    continue
                self._user = user
                break
            else:
                raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self._user:
            owner = pwd.getpwnam(self._user)
            for d in (self.base, self.sock):
                os.chown(d, owner.pw_uid, owner.pw_gid)
            self.log.touch()
            os.chown(self.log, owner.pw_uid, owner.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "signet", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-instructions")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
                  f"-c listen_addresses='' -c unix_socket_directories='{self.sock}' -c fsync=on "
                  "-c synchronous_commit=on -c max_connections=200", "start")
        self.running = True
        self.createdb("signet")
        return self

    def createdb(self, name: str) -> str:
        self._run(_bin("createdb"), "-h", str(self.sock), "-U", "signet", "--locale=C", "-T", "template0", name)
        return self.url(name)

    def url(self, db: str = "signet") -> str:
        return f"postgresql://signet@/{db}?host={self.sock}"

    def stop(self) -> None:
        if self.running:
            self.running = False
            subprocess.run(self._as_owner(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"),
                           capture_output=True, timeout=120, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
