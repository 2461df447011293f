"""Errors that end a command with a one-line reason instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment the user can fix; the message says what and how."""


class ConfigError(UserError):
    """A configuration file is malformed or a value is out of range.

    The message always names the file and the key path (``file: key.path: problem``) so the
    operator can go straight to the line.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        # One line, always: a key or value taken from the file may itself hold line breaks.
        message = f"{where}: {problem}".replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message)
