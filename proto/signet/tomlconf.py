"""Typed reading of TOML configuration tables that reports every problem at once.

Each :class:`Table` refuses keys it does not know and collects problems (wrong type, out of range, unknown
key) in a shared :class:`Problems` instead of stopping at the first; the loader raises once, listing them
all, with each key named as ``[table] key`` and the expected type in words ("must be an integer").  Values
that failed come back as their default so that later checks can still run.
"""

from __future__ import annotations

import enum
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

E = TypeVar("E", bound=enum.Enum)

_WORDS: dict[type, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                           list: "a list", dict: "a table"}


class ConfigProblems(ValueError):
    """One or more problems in a configuration file; ``problems`` lists each in words.

    ``ConfigProblems(source, [problem, ...])`` for a file; ``ConfigProblems(message)`` for one problem found
    after loading (a key file readable by others, a missing file the configuration names).
    """

    def __init__(self, source: str, problems: list[str] | None = None) -> None:
        if problems is None:
            self.source, self.problems = "", [source]
            super().__init__(source)
            return
        self.source = source
        self.problems = list(problems)
        head = f"{len(problems)} problems in {source}" if len(problems) > 1 else f"problem in {source}"
        super().__init__(head + ":\n  - " + "\n  - ".join(problems))


class Problems:
    """Problems found so far in one file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_if_any(self, error: type[ConfigProblems] = ConfigProblems) -> None:
        if self.items:
            raise error(self.source, self.items)


def load_toml(path: str | os.PathLike[str], error: type[ConfigProblems] = ConfigProblems) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(str(p), [f"cannot read the file: {e.strerror}"]) from None
    except UnicodeDecodeError:
        raise error(str(p), ["the file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as e:
        raise error(str(p), [f"not valid TOML: {e}"]) from None


class Table:
    """One TOML table (``where`` is its dotted name, "" for the top level)."""

    def __init__(self, data: Any, where: str, problems: Problems, known: Iterable[str]) -> None:
        self.where = where
        self.problems = problems
        if not isinstance(data, Mapping):
            problems.add(f"[{where}] must be a table")
            data = {}
        self.data: Mapping[str, Any] = data
        unknown = sorted(set(data) - set(known))
        if unknown:
            where_text = f"[{where}]" if where else "the top level"
            problems.add(f"unknown setting(s) in {where_text}: {', '.join(unknown)}")

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.data

    def _typed(self, key: str, kind: type, default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.add(f"{self.name(key)} must be {_WORDS.get(kind, kind.__name__)}, got {value!r}")
            return default
        return value

    def text(self, key: str, default: str = "", *, choices: Iterable[str] | None = None) -> str:
        value = str(self._typed(key, str, default)).strip()
        if choices is not None and key in self.data:
            allowed = list(choices)
            if value not in allowed:
                self.problems.add(f"{self.name(key)} must be one of {', '.join(allowed)}, got {value!r}")
                return default
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value: int = self._typed(key, int, default)
        ranged: int = self._ranged(key, value, default, minimum, maximum)
        return ranged

    def number(self, key: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None) -> float:
        value: float = self._typed(key, float, default)
        ranged: float = self._ranged(key, value, default, minimum, maximum)
        return ranged

    def _ranged(self, key: str, value: Any, default: Any, minimum: Any, maximum: Any) -> Any:
        if minimum is not None and value < minimum:
            self.problems.add(f"{self.name(key)} must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.problems.add(f"{self.name(key)} must be at most {maximum}, got {value}")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._typed(key, bool, default))

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._typed(key, list, None)
        if value is None:
            return default
        if not all(isinstance(v, str) and v for v in value):
            self.problems.add(f"{self.name(key)} must be a list of non-empty strings")
            return default
        return tuple(value)

    def path(self, key: str, base: Path, default: Path | None = None) -> Path | None:
        text = self.text(key, "")
        if not text:
            return default
        p = Path(os.path.expandvars(os.path.expanduser(text)))
        return p if p.is_absolute() else base / p

    def paths(self, key: str, base: Path) -> tuple[Path, ...]:
        out = []
        for text in self.strings(key):
            p = Path(os.path.expandvars(os.path.expanduser(text)))
            out.append(p if p.is_absolute() else base / p)
        return tuple(out)

    def enum(self, key: str, kind: type[E], default: E) -> E:
        if key not in self.data:
            return default
        text = self.text(key, default.value)
        try:
            return kind(text)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            self.problems.add(f"{self.name(key)} must be one of {choices}, got {text!r}")
            return default

    def table(self, key: str, known: Iterable[str]) -> Table:
        return Table(self.data.get(key, {}), self.name(key), self.problems, known)

    def tables(self, key: str, known: Iterable[str]) -> list[Table]:
        """An array of tables (``[[key]]``)."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.problems.add(f"{self.name(key)} must be an array of tables ([[{self.name(key)}]])")
            return []
        return [Table(v, f"{self.name(key)}[{i}]", self.problems, known) for i, v in enumerate(value)]
