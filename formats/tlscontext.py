"""One TLS context per process for pyHanko's HTTP clients (timestamps, OCSP responses, CRLs).

pyHanko's lazy aiohttp sessions (``LazySession`` in ``pyhanko_certvalidator.fetchers.aiohttp_fetchers.util``, which
``HTTPTimeStamper`` opens for every timestamp request and ``AIOHttpFetcherBackend`` for every validation context)
build a TLS context for each new session: ``ssl.create_default_context(cafile=certifi.where())``, which parses
certifi's ~150 roots -- 22 ms on the development machine, more than a P-256 PAdES signature.  A PAdES B-T signature
pays it once, a platform seal (PAdES B-LTA: fetchers, the signature's timestamp, the document timestamp) several
times; py-spy found it in half of the server's sealing time (bench/envelope_journeys.py).

:func:`install` has those sessions use one context built the same way (the same roots, the same settings), made once
per process on first use; a context is only read once made, so sessions of any thread or event loop share it.  It
replaces the one factory every lazy session goes through (``util._default_session``); :func:`install` fails loudly
if a pyHanko upgrade moves it, and tests/formats/test_tlscontext.py checks that sessions really get the shared
context.  Processes call it at start: signet-server (server.runtime), the agent and its document workers.
"""

from __future__ import annotations

import functools
import ssl

import aiohttp
import certifi
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import util as _pyhanko_http

__all__ = ["install", "tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every pyHanko HTTP session of this process (certifi's roots, Python's defaults)."""
    return ssl.create_default_context(cafile=certifi.where())


def _session() -> aiohttp.ClientSession:
    # what pyHanko's own factory makes, with the shared context (called inside the running event loop)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context()))


def install() -> None:
    """Make pyHanko's lazy HTTP sessions use :func:`tls_context` (idempotent)."""
    if not callable(getattr(_pyhanko_http, "_default_session", None)):
        raise RuntimeError("pyhanko_certvalidator no longer builds its HTTP sessions in util._default_session: "
                           "formats.tlscontext must follow it")
    _pyhanko_http._default_session = _session
