"""Retention in the running server's terms: RetentionJob (the hourly pass) crypto-shreds what is past an
organisation's retention unless it is on legal hold, each object leaving an archive.shredded tombstone in the audit
log in the same transaction; the object is unreadable afterwards; the audit log still verifies."""

from __future__ import annotations

from datetime import timedelta

import pytest


def test_retention_end_shreds_with_a_tombstone_and_legal_hold_protects(pki, tmp_path):
    from server import audit
    from server.archive import Archive, BlobShredded
    from server.archive.retention import RetentionJob
    from server.ca import Role
    from server.clock import ManualClock
    from server.store import open_store

    store = open_store(str(tmp_path / "s.sqlite"))
    audit.migrate(store)
    clock = ManualClock()
    archive = Archive(pki.token, store, tmp_path / "archive", kek_label=pki.keys.archive_kek_label, clock=clock)
    kept = archive.put("org-held", b"contract of an organisation under legal hold")
    gone = archive.put("org-a", b"contract whose retention ends")
    archive.set_policy("org-a", retention_days=30)
    archive.set_policy("org-held", retention_days=30, legal_hold=True)
    job = RetentionJob(archive, store, clock)
    assert job.run_once() == 0  # nothing is past retention yet
    clock.advance(31 * 86400)
    assert job.run_once() == 1
    with pytest.raises(BlobShredded):
        archive.get("org-a", gone)
    assert archive.get("org-held", kept) == b"contract of an organisation under legal hold"
    log = audit.AuditLog(store, migrate=False)
    [leaf] = [r for r in (log.leaf(i) for i in range(log.size())) if r and r["kind"] == "archive.shredded"]
    assert gone in leaf["payload"] and "org-a" in leaf["payload"]
    log.sign_head(pki.keys.signer(Role.AUDIT), clock.now() + timedelta(seconds=1))
    assert log.verify(pki.keys.certificate_der(Role.AUDIT)).ok
    archive.set_legal_hold("org-held", False)
    assert job.run_once() == 0  # the pass runs at most once an hour
    clock.advance(3600)
    assert job.run_once() == 1  # the hold lifted: its retention has ended too
