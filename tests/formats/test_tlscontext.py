"""formats.tlscontext: pyHanko's HTTP sessions (timestamps, OCSP, CRLs) share one TLS context per process."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession

from formats import tlscontext


def test_every_pyhanko_http_session_gets_the_one_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions as HTTPTimeStamper (a lazy session per request) and the validation fetchers open them, in several
    event loops: one TLS context is built in all; without install() each session built its own."""
    built: list[int] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    tlscontext.tls_context.cache_clear()
    tlscontext.install()

    async def sessions() -> None:
        for _ in range(3):  # a timestamp request's own lazy session, opened and closed
            lazy = LazySession()
            assert not lazy.get_session().closed
            await lazy.close()
        backend = AIOHttpFetcherBackend()  # a validation context's fetchers (sealing: `async with` closes them)
        backend.get_fetchers()
        assert isinstance(backend.session, LazySession)
        backend.session.get_session()
        await backend.close()

    for _ in range(2):  # a seal or a signature runs its own event loop each time
        asyncio.run(sessions())
    assert len(built) == 1
    assert tlscontext.tls_context() is tlscontext.tls_context()
    assert tlscontext.tls_context().verify_mode == ssl.CERT_REQUIRED and tlscontext.tls_context().check_hostname


def test_install_is_idempotent() -> None:
    tlscontext.install()
    tlscontext.install()
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import util

    assert util._default_session is tlscontext._session
