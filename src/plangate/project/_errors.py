"""The project file (`plangate.project`): its one error, raised by every part that reads or uses
the file."""

from __future__ import annotations

from pathlib import Path

from plangate.errors import PlangateUsageError


class ProjectError(PlangateUsageError):
    """A project file cannot be found, read or used: the message names the file, the key and
    the problem (a missing environment variable by its name).

    Attributes:
        file: The project file.
        key: The dotted key to blame (`tools.2.openapi`), when one is.
    """

    def __init__(
        self, file: str | Path, message: str, *, key: str | None = None, hint: str | None = None
    ):
        self.file = str(file)
        self.key = key
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message, hint=hint)
