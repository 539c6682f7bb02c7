"""The project file (`plangate.project`): `${VAR}` in its strings, read from the environment when
the part that holds it is used, so that a variable a run never needs may stay unset."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plangate.project._errors import ProjectError

_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Expander:
    """Expands `${VAR}` in the strings of one part of the file, remembering what each variable
    gave, so that an error quoting a secret can be written back with the variable's name."""

    file: Path
    key: str
    environ: Mapping[str, str]
    given: dict[str, str] = field(default_factory=dict)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return _VARIABLE.sub(self._one, value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        return value

    def _one(self, match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name == "PROJECT_DIR":
            return str(self.file.parent)
        if name not in self.environ:
            raise ProjectError(
                self.file,
                f"environment variable {name} is not set",
                key=self.key,
                hint=f"set {name}, or write $${{{name}}} for a literal ${{{name}}}",
            )
        self.given[name] = self.environ[name]
        return self.environ[name]

    def hide(self, text: str) -> str:
        """`text` with every value a variable gave written as `${VAR}` again."""
        for name, value in sorted(self.given.items(), key=lambda item: -len(item[1])):
            if value:
                text = text.replace(value, "${" + name + "}")
        return text
