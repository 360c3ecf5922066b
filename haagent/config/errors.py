"""The one error type of configuration loading: what is wrong, where, and what would be right."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A configuration problem a person can fix from the message alone.

    `str()` is one line: `<file>: <key.path>: <what is wrong>; expected <what is expected>`.
    `file` is the YAML file when there is one; otherwise `origin` names where the values
    came from (`environment`, `<dcs>` for the etcd `config` key, `<config>` for a mapping
    handed to `parse_settings`).  `key` is a dotted path (`bootstrap.initdb[1]`), the name
    of an environment variable (`HAAGENT_RESTAPI_LISTEN`) or `<yaml>` / `<file>` for
    problems with the file itself.
    """

    def __init__(
        self,
        key: str,
        problem: str,
        expected: str | None = None,
        *,
        file: Path | None = None,
        origin: str = "<config>",
    ) -> None:
        self.file = file
        self.origin = origin
        self.key = key
        self.problem = problem
        self.expected = expected
        super().__init__(str(self))

    @property
    def where(self) -> str:
        """The file (or the origin of the values) the error is about."""
        return str(self.file) if self.file is not None else self.origin

    @property
    def message(self) -> str:
        """The message without the file: `<key.path>: <problem>; expected <expected>`."""
        text = f"{self.key}: {self.problem}" if self.key else self.problem
        if self.expected:
            text += f"; expected {self.expected}"
        return " ".join(text.split())

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the keyword-only fields when pickled (e.g. across a process pool).
        return (_rebuild, (self.key, self.problem, self.expected, self.file, self.origin))


def _rebuild(
    key: str, problem: str, expected: str | None, file: Path | None, origin: str
) -> ConfigError:
    return ConfigError(key, problem, expected, file=file, origin=origin)
