"""Portal links (server.portal.links): bound to one envelope and recipient, stored only as a keyed hash, expiring."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.portal import LinkNotFound, PortalLinks
from tests.conftest import store_for_test
from tests.server_helpers import db_bytes


def test_a_link_names_its_envelope_and_recipient_until_it_expires(tmp_path: Path) -> None:
    store = store_for_test(tmp_path, "links.db")
    clock = ManualClock()
    links = PortalLinks(store, b"k" * 32, clock, ttl=timedelta(days=14))
    token = links.issue("env_1", "rcp_1", "p_1", "org_1")
    other = links.issue("env_1", "rcp_2", "p_2", "org_1")
    assert token != other and len(token) == 43
    got = links.resolve(token)
    assert (got.envelope_id, got.recipient_id, got.person_id, got.org_id) == ("env_1", "rcp_1", "p_1", "org_1")
    assert token.encode() not in db_bytes(store)  # only its keyed hash is stored
    clock.advance(timedelta(days=14).total_seconds())
    with pytest.raises(LinkNotFound):
        links.resolve(token)
    store.close()


@pytest.mark.parametrize("token", ["", "short", "x" * 65, "a" * 40 + "/../", "a" * 43])
def test_unknown_or_malformed_tokens_are_not_found_alike(tmp_path: Path, token: str) -> None:
    store = store_for_test(tmp_path, "links.db")
    links = PortalLinks(store, b"k" * 32, ManualClock())
    with pytest.raises(LinkNotFound, match="not valid"):
        links.resolve(token)
    store.close()


def test_another_server_secret_resolves_nothing(tmp_path: Path) -> None:
    store = store_for_test(tmp_path, "links.db")
    token = PortalLinks(store, b"k" * 32, ManualClock()).issue("env_1", "rcp_1", "p_1", "org_1")
    with pytest.raises(LinkNotFound):
        PortalLinks(store, b"j" * 32, ManualClock()).resolve(token)
    store.close()
