"""Default locations of the agent's socket and state (XDG), for the agent and its light client alike."""

from __future__ import annotations

import os
from pathlib import Path


def default_socket_path() -> Path | None:
    """$XDG_RUNTIME_DIR/signet/agent.sock, or None when there is no runtime directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "signet" / "agent.sock"
    return None


def default_state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "signet"
