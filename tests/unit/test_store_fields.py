"""Sealed fields (server.store.fields): written encrypted, read back opened, never in the file or its WAL."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.sealing import AesGcmBox, SealingError
from server.store import FieldSealer, Sealed, open_store

MARK = "Zyxquartz Lemonfield"  # a title word and a name no SQLite page holds by chance


def _files(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@pytest.fixture
def sealed_store(tmp_path: Path):
    store = open_store(str(tmp_path / "s.sqlite"))
    store.attach_field_sealer(FieldSealer(AesGcmBox.generate()))
    store.execute("CREATE TABLE t (id TEXT PRIMARY KEY, title TEXT NOT NULL, der BLOB, plain TEXT)")
    yield store, tmp_path / "s.sqlite"
    store.close()


def test_sealed_text_and_bytes_are_encrypted_in_the_file_and_wal_and_read_back_opened(sealed_store) -> None:
    store, path = sealed_store
    store.insert("t", {"id": "a", "title": Sealed(MARK), "der": Sealed(MARK.encode("utf-16-le")), "plain": "x"})
    with store.transaction():
        store.execute("UPDATE t SET title = ? WHERE id = ?", (Sealed(MARK + " 2"), "a"))
    disk = _files(path)
    assert MARK.encode() not in disk and MARK.encode("utf-16-le") not in disk
    row = store.query_one("SELECT title AS renamed, der, plain FROM t WHERE id = ?", ("a",))
    assert row == {"renamed": MARK + " 2", "der": MARK.encode("utf-16-le"), "plain": "x"}
    raw = store.query_one("SELECT hex(title) AS h FROM t")  # what is stored: the prefix and ciphertext
    assert raw is not None and bytes.fromhex(raw["h"]).startswith(b"sealed:1:")


def test_the_same_text_seals_differently_each_time(sealed_store) -> None:
    store, _ = sealed_store
    store.insert("t", {"id": "a", "title": Sealed(MARK)})
    store.insert("t", {"id": "b", "title": Sealed(MARK)})
    [n] = store.query("SELECT COUNT(DISTINCT hex(title)) AS n FROM t")
    assert n["n"] == 2  # randomised: equal titles are not visible as equal ciphertext


def test_a_store_without_the_key_refuses_to_read_a_sealed_value(sealed_store) -> None:
    store, path = sealed_store
    store.insert("t", {"id": "a", "title": Sealed(MARK)})
    other = open_store(str(path))
    try:
        with pytest.raises(SealingError, match="no field key") as e:
            other.query("SELECT title FROM t")
        assert MARK not in str(e.value)
        other.attach_field_sealer(FieldSealer(AesGcmBox.generate()))  # the wrong key
        with pytest.raises(SealingError):
            other.query("SELECT title FROM t")
    finally:
        other.close()


def test_a_changed_byte_of_a_sealed_value_is_refused(sealed_store) -> None:
    store, _ = sealed_store
    store.insert("t", {"id": "a", "title": Sealed(MARK)})
    store.execute("UPDATE t SET title = substr(title, 1, 40) || "
                  "CASE substr(title, 41, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(title, 42)")
    with pytest.raises(SealingError):
        store.query("SELECT title FROM t")


def test_without_a_sealer_sealed_values_are_the_plaintext_they_wrap(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "plain.sqlite"))
    try:
        store.execute("CREATE TABLE t (id TEXT PRIMARY KEY, title TEXT NOT NULL)")
        store.insert("t", {"id": "a", "title": Sealed(MARK)})
        assert store.query_one("SELECT title FROM t") == {"title": MARK}
    finally:
        store.close()


def test_sealed_never_shows_its_value() -> None:
    assert MARK not in repr(Sealed(MARK)) and MARK not in str(Sealed(MARK))
