"""The ``portal_request`` target: a raw HTTP request to the portal's handler (server.portal.web), over memory.

Placeholders in the request: ``@link`` a live link of @p1 (the only signer of @v1), ``@csrf`` its CSRF token for
the session ``@sess`` (32 hex digits, sent as the cookie), and the world's ids (``@d1`` ...: see
:mod:`.worlds`).  Contract: the handler never raises; it answers a well-formed HTTP response; never 500 (an
exception our code did not turn into a page); never a page carrying the link's token back to a request that did
not name it.  State the request changes (a decline, a code sent) is put back by ``ServerWorld.refresh``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .fakes import Finding, in_memory
from .worlds import ENVELOPE_SENT, PERSON_APPROVED, server_world

SESSION = "5e" * 16
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


@functools.cache
def _portal() -> Any:
    """The fuzz process's portal, over its server world (this switches the process to the fuzz token directory:
    never call it from the test suite's own process, use :func:`make_portal` with a world built there)."""
    return make_portal(server_world())


def make_portal(world: Any) -> Any:
    """(world, links, the handler's server, the in-memory handler class) over ``world``."""
    from server.portal import PortalHttpServer, PortalLinks
    from server.portal.web import _Handler
    from server.ratelimit import SlidingWindow

    links = PortalLinks(world.store, b"f" * 32, world.clock)
    server = PortalHttpServer.__new__(PortalHttpServer)  # the handler's view of its server, without a socket
    server.envelopes, server.links, server.session_seconds, server.timeout_seconds = world.envelopes, links, 3600, 5
    server._csrf_key = b"c" * 32
    server.bridge_url, server.public_url = "http://127.0.0.1:17380", "https://portal.test"
    server.headers = {}
    server.posts = SlidingWindow(10**9, 60.0)  # the fuzzer posts far faster than any client

    return world, links, server, in_memory(_Handler)


def portal_request(data: bytes) -> None:
    request(_portal(), data)


def request(portal: Any, data: bytes) -> None:
    """One fuzz input through ``portal`` (see :func:`make_portal`); a breach of the contract is a Finding."""
    world, links, server, handler = portal
    v1 = world.resolve(ENVELOPE_SENT)
    env = world.envelopes.get(world.as_person(world.resolve(PERSON_APPROVED)), v1)
    me = env.recipient_for(world.resolve(PERSON_APPROVED))
    token = links.issue(v1, me.id, me.person_id, me.org_id)
    raw = data.replace(b"@link", f"/r/{token}".encode()).replace(b"@csrf", server.csrf(token, SESSION).encode()) \
        .replace(b"@sess", SESSION.encode())
    for name, value in world.placeholders.items():
        raw = raw.replace(name.encode(), str(value).encode())
    try:
        handler(raw, ("127.0.0.1", 50000), server)
        out = server.last_response
        if not out:
            return  # nothing to answer (no request line): the connection just closes
        m = _STATUS.match(out)
        if m is None:
            raise Finding(f"the portal answered something that is not an HTTP response: {out[:40]!r}",
                          key="portal answer not HTTP")
        if m.group(1) == b"500":
            raise Finding("the portal answered 500 (an exception reached its catch-all)", key="portal 500")
        if token.encode() in out.split(b"\r\n\r\n", 1)[-1] and token.encode() not in raw:
            raise Finding("the portal page carries a link's token the request did not name", key="portal leak")
    finally:
        world.refresh()
