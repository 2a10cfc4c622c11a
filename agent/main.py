"""`signet-agent --config FILE`: run the agent until SIGTERM/SIGINT.

Exit codes: 0 after a clean stop, 2 for a bad command line or configuration,
1 for any other failure at start-up.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading

from signet import logs

from .errors import AgentError, ConfigError

log = logging.getLogger("agent")


def run(config_path: str, ready_file: str | None = None) -> int:
    from . import config as config_mod

    os.umask(0o077)  # state files, journal and spool are private whatever the caller's umask
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack to stderr
    cfg = config_mod.load(config_path)
    logs.setup(cfg.log_level)
    from .app import Agent
    from .servicer import AgentServicer
    from .transport import build_server, secure_socket

    agent = Agent(cfg)
    bridge = None
    kiosk = None
    try:
        server, port = build_server(cfg, AgentServicer(agent))
        server.start()
        secure_socket(cfg.socket)
        if cfg.bridge.enabled:
            from .bridge import BridgeServer

            bridge = BridgeServer(cfg.bridge, cfg.socket, cfg.state_dir)
            bridge.start()
            log.info("local bridge on http://%s for %s", cfg.bridge.listen, ", ".join(cfg.bridge.allowed_origins))
        if cfg.kiosk.enabled:
            from .kiosk import start as start_kiosk

            kiosk = start_kiosk(cfg, agent.directory)
            log.info("kiosk pages on http://%s (server API %s)", cfg.kiosk.listen, cfg.kiosk.server_api)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        log.info("signet-agent listening on unix:%s%s (signing workers: %s, verification workers: %s)", cfg.socket,
                 f" and {cfg.tls.listen} (port {port}, mutual TLS)" if cfg.tls else "",
                 agent.sign_workers.pids() or "in-process", agent.verify_workers.pids() or "in-process")
        if ready_file:
            with open(ready_file, "w") as f:
                f.write(f"{port or 0}\n")
        stop.wait()
        log.info("stopping")
        # a stop that takes longer than it should leaves every thread's stack in the log (and goes on)
        faulthandler.dump_traceback_later(20, exit=False)
        if bridge is not None:
            bridge.stop()
        if kiosk is not None:
            kiosk.stop()
        server.stop(grace=5).wait()
        return 0
    finally:
        agent.close()
        try:
            cfg.socket.unlink()
        except FileNotFoundError:
            pass
        faulthandler.cancel_dump_traceback_later()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signet-agent", description="Signet local signing agent")
    p.add_argument("--config", required=True, help="TOML configuration file")
    p.add_argument("--ready-file", help="write the TCP port (0 if none) here once serving")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args.config, args.ready_file)
    except ConfigError as e:
        print(f"signet-agent: {e}", file=sys.stderr)
        return 2
    except AgentError as e:
        print(f"signet-agent: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
