"""The command blocks the docs mark `<!-- runnable: server -->` run as they stand, in order, in a directory
holding a demo-mode `server.toml` for a fresh SoftHSM token (the PIN in the variable the file names), with the
venv's `signet-*` entry points on PATH. Each `# expect: TEXT` comment names output the block must print."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server_harness import write_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def runnable_blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(rf"<!-- runnable: {kind} -->\n```sh\n(.*?)\n```", text, re.S):
            line = text[:m.start()].count("\n") + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", m.group(1)))
    return found


BLOCKS = runnable_blocks("server")


def test_the_docs_mark_a_server_walkthrough() -> None:
    assert BLOCKS, "docs/server.md lost its runnable block"


@pytest.mark.parametrize(("where", "script"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_runnable_server_block(where: str, script: str, make_token, tmp_path: Path) -> None:
    tok = make_token("docs")
    env = write_config(tmp_path / "srv", tok.label, tok.pin)
    environ = {**env.environ(), "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=env.dir, env=environ, capture_output=True,
                       text=True, timeout=600, check=False)
    assert p.returncode == 0, f"{where}: the block failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    for expected in re.findall(r"# expect: (.+)$", script, re.M):
        assert expected.strip() in p.stdout, f"{where}: expected {expected!r} in the output:\n{p.stdout}"
    assert tok.pin not in p.stdout + p.stderr
