"""Every command the README and docs/ show is a command the programs accept.

Code blocks are read from README.md and docs/*.md. A line that starts with a program name (`signet`,
`signet-agent`, `signet-server`, `signet-admin`, `make`) is a command: it must parse completely. The
indented lines under a synopsis line (``signet-admin --config F …`` followed by ``  org create NAME | …``)
are sub-command forms: each alternative must name an existing sub-command and only existing options (a
missing required option is allowed there, a synopsis shows the shape). Placeholders (NAME, P_ID, +86…) are
filled with sample values; an optional group ``[--a X | --b Y]`` is checked with its first alternative.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    import agent.cli
    import agent.main
    import server.admin
    import server.main

    return {"signet": agent.cli.parser, "signet-agent": agent.main.parser, "signet-server": server.main.parser,
            "signet-admin": server.admin.parser}


@dataclass(frozen=True)
class Command:
    where: str
    program: str
    argv: tuple[str, ...]
    synopsis: bool  # a sub-command form under a synopsis line: required options may be left out


def _blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```") and lines[i].strip() in ("```", "```sh", "```console", "```bash"):
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            yield start + 1, lines[start:j]
            i = j + 1
        else:
            i += 1


def _logical(block: list[str]) -> Iterator[tuple[int, str]]:
    """Lines with backslash continuations joined; (offset, text)."""
    buf, first = "", 0
    for k, raw in enumerate(block):
        if not buf:
            first = k
        line = raw.lstrip() if buf else raw
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1].rstrip() + " "
            continue
        yield first, buf + line
        buf = ""
    if buf:
        yield first, buf


SAMPLES = {"+86…": "+8613800138000"}


def _words(form: str) -> list[str]:
    form = re.split(r"\s#\s|\s{3,}", form)[0]  # a trailing comment or description
    form = re.sub(r"\[([^\[\]|]*?)\s\|\s[^\[\]]*\]", r"\1", form)  # [--a X | --b Y] -> --a X
    form = form.replace("[", " ").replace("]", " ")
    words: list[str] = []
    for word in shlex.split(form):
        w = SAMPLES.get(word, word)
        if "|" in w and not w.startswith("-"):
            w = w.split("|")[0]  # --reason key_compromise|superseded|… -> key_compromise
        if w in ("…", "..."):
            if words and words[-1].startswith("--"):
                words.append("x")  # an option's value left out
            continue
        words.append(w.replace("…", "x"))
    return words


def commands() -> list[Command]:
    programs = set(_parsers()) | {"make"}
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for start, block in _blocks(text):
            lines = list(_logical(block))
            synopsis_program = None
            for n, (offset, line) in enumerate(lines):
                where = f"{doc.relative_to(ROOT)}:{start + offset}"
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                head = stripped.split()[0]
                if head in programs and not line.startswith(" "):
                    following = lines[n + 1][1] if n + 1 < len(lines) else ""
                    if following.startswith("  ") and following.strip():
                        synopsis_program = head  # a synopsis line: the indented forms below it are checked
                        continue
                    synopsis_program = None
                    out.append(Command(where, head, tuple(_words(stripped)[1:]), synopsis=False))
                elif synopsis_program is not None and re.match(r"^ {1,8}\S", line):  # deeper: a description
                    for alternative in re.split(r"\s\|\s(?![^\[]*\])", stripped):
                        out.append(Command(where, synopsis_program, tuple(_words(alternative)), synopsis=True))
    return out


def _makefile_targets() -> set[str]:
    return set(re.findall(r"(?m)^([a-z][\w-]*):", (ROOT / "Makefile").read_text()))


ALL = commands()


def test_the_docs_show_commands_of_every_program() -> None:
    shown = {c.program for c in ALL}
    assert {"signet", "signet-admin", "signet-server", "make"} <= shown, shown
    assert len(ALL) >= 30


@pytest.mark.parametrize("cmd", ALL, ids=[f"{c.where} {c.program} {' '.join(c.argv[:3])}" for c in ALL])
def test_documented_command_is_accepted(cmd: Command) -> None:
    if cmd.program == "make":
        assert set(cmd.argv) <= _makefile_targets(), f"{cmd.where}: no make target {cmd.argv}"
        return
    parser = _parsers()[cmd.program]()
    err = io.StringIO()
    argv = list(cmd.argv)
    if cmd.program == "signet-admin" and "--config" not in argv:
        argv = ["--config", "server.toml", *argv]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
            return
        except SystemExit as e:
            if e.code == 0:
                return
    message = err.getvalue()
    if cmd.synopsis and "the following arguments are required" in message:
        return
    pytest.fail(f"{cmd.where}: `{cmd.program} {' '.join(cmd.argv)}` is refused:\n{message}")
