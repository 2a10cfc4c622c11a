"""The ``bridge_request`` target: a raw HTTP request to the agent's local bridge (agent.bridge), over memory.

Placeholders in the request: ``@origin`` the origin on the bridge's allow-list, ``@host`` its loopback Host.
Contract: the handler never raises; it answers a well-formed HTTP response; never 500; and the signing step
(:meth:`agent.bridge.BridgeServer.perform`, recorded here instead of calling the agent and the server, which the
end-to-end tests do) is reached only by a POST to /v1/sign whose Host is the listener's, whose Origin is on the
allow-list, whose return address is under that origin, with every field well-formed and a nonce never seen.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit

from .fakes import Finding, in_memory

ORIGIN = "https://portal.test:7446"
HOST = "127.0.0.1:17380"
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


@functools.cache
def _bridge() -> Any:
    return make_bridge()


def make_bridge() -> Any:
    """(the handler's server with ``perform`` recorded, the in-memory handler class)."""
    from agent.bridge import BridgeServer, Nonces, _Handler
    from agent.config import BridgeConfig

    server = BridgeServer.__new__(BridgeServer)  # the handler's view of its server, without a socket
    server.config = BridgeConfig(listen=HOST, allowed_origins=(ORIGIN,))
    server.hosts = {HOST}
    server.nonces = Nonces()
    performed: list[tuple[dict[str, str], str, str]] = []
    server.performed = performed  # type: ignore[attr-defined]
    server.perform = lambda f, origin, back: performed.append((f, origin, back))  # type: ignore[method-assign]

    return server, in_memory(_Handler)


def bridge_request(data: bytes) -> None:
    request(_bridge(), data)


def request(bridge: Any, data: bytes) -> None:
    server, handler = bridge
    raw = data.replace(b"@origin", ORIGIN.encode()).replace(b"@host", HOST.encode())
    before = len(server.performed)
    server.last_response = b""
    handler(raw, ("127.0.0.1", 50000), server)
    out = server.last_response
    if not out:
        return
    m = _STATUS.match(out)
    if m is None:
        raise Finding(f"the bridge answered something that is not an HTTP response: {out[:40]!r}",
                      key="bridge answer not HTTP")
    if m.group(1) == b"500":
        raise Finding("the bridge answered 500 (an exception reached its catch-all)", key="bridge 500")
    if len(server.performed) > before:
        f, origin, back = server.performed[-1]
        head = raw.split(b"\r\n\r\n", 1)[0]
        if origin != ORIGIN or f"{urlsplit(back).scheme}://{urlsplit(back).netloc}" != ORIGIN:
            raise Finding("the bridge signed for a page not on its allow-list", key="bridge origin")
        hosts = re.findall(rb"(?im)^host:[ \t]*([^\r\n]*?)[ \t]*\r?$", head)  # the first one counts (http.server)
        words = head.split(b"\n", 1)[0].split()  # as http.server reads the request line
        if words[:1] != [b"POST"] or len(words) < 2 or words[1].split(b"?", 1)[0] != b"/v1/sign" or not hosts \
                or hosts[0] != HOST.encode():
            raise Finding("the bridge signed for a request that was not a POST to its loopback listener",
                          key="bridge request")
        if sum(1 for g, _, _ in server.performed if g["nonce"] == f["nonce"]) > 1:
            raise Finding("the bridge signed twice for one nonce", key="bridge replay")
        if m.group(1) != b"303" or not re.search(rb"\r\nLocation: [!-~]+\r\n", out.split(b"\r\n\r\n", 1)[0] + b"\r\n"):
            raise Finding("the bridge signed but did not send the browser back", key="bridge answer")
