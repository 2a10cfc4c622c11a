"""Real `signet-agent` and `signet-server` processes: configuration, start, readiness, clean stop, kill -9.

One implementation for the demo (`make demo`), the end-to-end tests, the soak and the benchmarks.  Secrets
(PINs) reach the processes through environment variables only, never argv.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
SERVER_PIN_ENV = "SIGNET_TEST_SERVER_PIN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessFailed(RuntimeError):
    """A process did not start, did not become ready, or did not stop cleanly."""


# -- the agent -------------------------------------------------------------------------------------------------------
class AgentProcess:
    """`python -m agent.main --config FILE` in ``directory`` (socket run/agent.sock, state in state/).

    ``agent_settings`` are extra lines of the [agent] table; ``extra_toml`` further tables; ``tls`` a dict with
    listen/certificate/private_key/client_ca (and optional revocation) for the TCP listener.
    """

    def __init__(self, directory: Path, extra_toml: str = "", *, agent_settings: str = "",
                 tls: dict[str, str] | None = None, env: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "run" / "agent.sock"
        self.state = self.dir / "state"
        self.log_path = self.dir / "agent.log"
        self.port: int | None = None
        self.env = env or {}
        lines = ["[agent]", f'socket = "{self.socket}"', f'state_dir = "{self.state}"', "token_poll_seconds = 0.5",
                 "token_reinit_seconds = 0.5", agent_settings, ""]
        if tls is not None:
            self.port = free_port()
            lines += ["[tcp]", f'listen = "127.0.0.1:{self.port}"']
            lines += [f'{k} = "{v}"' for k, v in tls.items()] + [""]
        self.config = self.dir / "agent.toml"
        self.config.write_text("\n".join(lines) + "\n" + extra_toml)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.started_in = 0.0  # seconds from start() until it was ready

    def start(self, timeout: float = 90.0) -> AgentProcess:
        """Start it and wait until it is serving (it writes its --ready-file after binding its listeners)."""
        ready = self.dir / "ready"
        ready.unlink(missing_ok=True)
        t0 = time.monotonic()
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen([PY, "-m", "agent.main", "--config", str(self.config), "--ready-file",
                                      str(ready)], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise ProcessFailed(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise ProcessFailed(f"agent did not become ready:\n{self.log()}")
            time.sleep(0.05)
        self.started_in = time.monotonic() - t0
        return self

    def health(self, timeout: float = 5.0) -> str:
        """Its grpc.health.v1 status over the socket, e.g. "SERVING" ("" when it does not answer)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with self.channel() as ch:
            try:
                r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            except grpc.RpcError:
                return ""
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (killed, and -9 returned, when it does not stop in time)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # the agent dumps every thread's stack: why it hangs
                time.sleep(1.0)
                self.proc.kill()
                self.proc.wait()
                print(f"agent did not stop within {timeout:.0f} s of SIGTERM; its log ends:\n"
                      + self.log()[-20000:], file=sys.stderr)
        if self._log is not None:
            self._log.close()
            self._log = None
        return int(self.proc.returncode)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def client(self) -> Any:
        from agent.client import AgentClient, Target

        return AgentClient(Target(socket=self.socket))

    def channel(self) -> Any:
        from agent.client import Target, channel

        return channel(Target(socket=self.socket))

    def stub(self) -> Any:
        from signet.v1 import agent_pb2_grpc

        return agent_pb2_grpc.AgentServiceStub(self.channel())

    def journal(self) -> list[dict[str, Any]]:
        from agent.journal import read

        return read(self.state / "journal.db")


def signet(agent: AgentProcess, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `signet --socket SOCK ARGS` (python -m agent.cli) against ``agent``."""
    return subprocess.run([PY, "-m", "agent.cli", "--socket", str(agent.socket), *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, input=stdin,
                          timeout=timeout, check=False)


# -- the server ------------------------------------------------------------------------------------------------------
@dataclass
class ServerEnv:
    dir: Path
    config: Path
    token_label: str
    pin: str = field(repr=False)
    api_port: int = 0
    enroll_port: int = 0
    http_port: int = 0
    pin_env: str = SERVER_PIN_ENV  # the variable the server reads its token PIN from ([hsm] pin_env)

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def ca_pem(self) -> Path:
        """The TLS root: what clients check the listeners against."""
        return self.state / "tls" / "ca.pem"

    @property
    def signing_root(self) -> Path:
        """The signing root: what verifiers of signatures trust."""
        return self.state / "signing-root.pem"

    @property
    def api(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    @property
    def enroll(self) -> str:
        return f"127.0.0.1:{self.enroll_port}"

    @property
    def pki_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def environ(self) -> dict[str, str]:
        return {**os.environ, self.pin_env: self.pin}


def write_server_config(directory: Path, token_label: str, pin: str, extra: str = "", *,
                        organisation: str = "Signet Test Platform", pin_env: str = SERVER_PIN_ENV,
                        otp_hourly_limit: int = 50, server_settings: str = "") -> ServerEnv:
    """A server.toml on free local ports, mode "demo" (codes in the outbox), EC keys (quick to generate);
    ``otp_hourly_limit``: one-time codes per phone or address and hour (a benchmark signing all day needs more);
    ``server_settings``: more lines of the ``[server]`` table (e.g. ``store = "postgresql://..."``)."""
    directory.mkdir(parents=True, exist_ok=True)
    env = ServerEnv(directory, directory / "server.toml", token_label, pin, free_port(), free_port(), free_port(),
                    pin_env)
    env.config.write_text(f"""# signet-server configuration (demo mode: one-time codes are read from the outbox)
[server]
state_dir = "state"
organisation = "{organisation}"
country = "CN"
key_family = "ec"
log_level = "INFO"
mode = "demo"
{server_settings}
[hsm]
token_label = "{token_label}"
pin_env = "{pin_env}"

[grpc]
listen = "127.0.0.1:{env.api_port}"
enroll_listen = "127.0.0.1:{env.enroll_port}"
workers = 4

[http]
listen = "127.0.0.1:{env.http_port}"

[otp]
min_interval_seconds = 0
hourly_limit = {otp_hourly_limit}
{extra}
""")
    return env


def server_cli(env: ServerEnv, module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=env.environ(), cwd=ROOT, check=False)


class ServerProcess:
    """`signet-server run` as a subprocess; ``stop()`` sends SIGTERM and checks the clean exit.

    Its log (stderr) is kept in memory (``log``) and, with ``log_path``, also appended to that file as it comes.
    ``python_args`` replace ``-m server.main`` (e.g. a wrapper module that profiles the server and then runs
    ``server.main.main`` with the remaining arguments: ``run --config FILE``).
    """

    def __init__(self, env: ServerEnv, timeout: float = 60.0, *, log_path: Path | None = None,
                 python_args: tuple[str, ...] = ("-m", "server.main")) -> None:
        self.env = env
        self.log_path = log_path
        self.proc = subprocess.Popen([PY, *python_args, "run", "--config", str(env.config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env.environ(),
                                     cwd=ROOT)
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout.put), daemon=True).start()
        threading.Thread(target=self._pump_log, daemon=True).start()
        try:
            line = self.stdout.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise ProcessFailed("signet-server did not report ready: " + "".join(self.stderr_lines[-20:])) from None
        if not line.startswith("signet-server ready"):
            self.proc.kill()
            raise ProcessFailed(f"unexpected first line {line!r}: " + "".join(self.stderr_lines[-20:]))
        self.ready_line = line

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def _pump_log(self) -> None:
        if self.log_path is None:
            self._pump(self.proc.stderr, self.stderr_lines.append)
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            for line in self.proc.stderr or ():
                self.stderr_lines.append(line)
                f.write(line)
                f.flush()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM; raises ProcessFailed unless it exits 0 after saying it stopped."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        time.sleep(0.05)  # let the pump thread deliver the last line
        rest = []
        while not self.stdout.empty():
            rest.append(self.stdout.get())
        if rc != 0 or not any("signet-server stopped" in r for r in rest):
            raise ProcessFailed(f"signet-server exited {rc}: " + "".join(self.stderr_lines[-20:]))
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    @property
    def log(self) -> str:
        return "".join(self.stderr_lines)
