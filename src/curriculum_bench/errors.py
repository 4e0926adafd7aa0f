"""Errors a user can fix, and readers of input files that raise them.

`python -m curriculum_bench` prints a user error as one line, `error: <message>`, and exits
with status 2; any other exception is a bug and keeps its traceback. A config value that is
wrong raises config.ConfigError (its message starts with the key's dotted path); an input file
that is missing, truncated or not what it should be raises InputFileError, whose message starts
with the file's path and ends with what to do about it.

Pure Python with no torch import, like config.py.
"""

from __future__ import annotations

import json
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, not with the code: the CLI prints it without a traceback."""


class InputFileError(UserError, ValueError):
    """An input file that is unreadable, truncated or malformed: `<path>: <problem>; <what to do>`."""

    def __init__(self, path, problem: str = "", fix: str = ""):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}" + (f"; {fix}" if fix else "") if problem else str(path))

    def __reduce__(self):  # pickles with its own arguments (e.g. out of a DataLoader worker)
        return type(self), (self.path, self.problem, self.fix)


class MissingInputFile(InputFileError, FileNotFoundError):
    """An input file that does not exist; also a FileNotFoundError for code that expects one."""

    def __new__(cls, path, problem: str = "", fix: str = ""):
        # OSError.__new__ would read (path, problem, fix) as (errno, strerror, filename).
        return FileNotFoundError.__new__(cls)


def read_json_file(path: Path, what: str, keys: tuple[str, ...] = (), fix: str = "") -> dict:
    """The JSON object in `path`, which holds `what` (e.g. "run metrics"); every key in `keys` present.

    A missing, unreadable or malformed file raises InputFileError naming the file, what it
    should hold and `fix` (by default: delete it and rerun what writes it).
    """
    path = Path(path)
    fix = fix or "delete it and rerun the step that writes it (snakemake reruns it)"
    if not path.is_file():
        raise MissingInputFile(path, f"no such file (expected {what})", fix)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError and UnicodeDecodeError
        raise InputFileError(path, f"cannot read {what} ({err}); it is truncated or not JSON", fix) from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected {what} as a JSON object, found a {type(data).__name__}", fix)
    missing = [key for key in keys if key not in data]
    if missing:
        raise InputFileError(path, f"{what} without the key {missing[0]!r}", fix)
    return data


def read_json_lines(path: Path, what: str, fix: str = "") -> list[dict]:
    """The JSON objects of a JSON-lines file (e.g. history.jsonl), one per non-empty line."""
    path = Path(path)
    fix = fix or "delete it and rerun the step that writes it (snakemake reruns it)"
    if not path.is_file():
        raise MissingInputFile(path, f"no such file (expected {what})", fix)
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError) as err:
        raise InputFileError(path, f"cannot read {what} ({err})", fix) from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise InputFileError(path, f"line {number} of {what} is not JSON ({err})", fix) from None
        if not isinstance(record, dict):
            raise InputFileError(path, f"line {number} of {what} is not a JSON object", fix)
        records.append(record)
    return records
