"""`signet envelope bulk-send`: the CSV file it reads (header row: placeholder names; one envelope per row)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.envelope_bulk import BadRows, read_rows


def _csv(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "rows.csv"
    if isinstance(text, str):
        p.write_text(text, encoding="utf-8", newline="")
    else:
        p.write_bytes(text)
    return p


def test_rows_by_header_name_with_their_lines(tmp_path: Path) -> None:
    rows = read_rows(_csv(tmp_path, '\ufeff signer ,name\r\np_1,"Wang, Ann"\r\n\r\np_2,"two\nlines"\np_3\n'))
    assert [(r.line, r.values) for r in rows] == [
        (2, {"signer": "p_1", "name": "Wang, Ann"}),
        (5, {"signer": "p_2", "name": "two\nlines"}),  # the line where the row ends
        (6, {"signer": "p_3", "name": ""}),  # a short row: the server says which placeholder has no value
    ]


@pytest.mark.parametrize(("text", "says"), [
    ("", "is empty"),
    ("signer,name\n", "no rows"),
    ("signer,,name\np,x,y\n", "one distinct name per column"),
    ("signer,signer\np,q\n", "one distinct name per column"),
    ("signer\np,extra\n", "2 cells for 1 columns"),
    (b"signer\n\xff\xfe\n", "not UTF-8"),
])
def test_unusable_files_are_refused(tmp_path: Path, text: str | bytes, says: str) -> None:
    with pytest.raises(BadRows, match=says):
        read_rows(_csv(tmp_path, text))
    with pytest.raises(BadRows, match="cannot read"):
        read_rows(tmp_path / "missing.csv")
