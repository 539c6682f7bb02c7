"""The kinds a plan's steps and a profile's rules are written in: apart from `plangate.plan`,
so that a profile (and a project file, and a command that only finds its database) does not
build the plan's models to name them."""

from __future__ import annotations

from typing import Literal

__all__ = ("Action", "Order")

Action = Literal["read", "propose", "execute"]
"""What a step does to the world: `read` nothing, `propose` a draft a human will see,
`execute` a change (send, book, pay)."""

Order = Literal["listed", "dependencies"]
"""In what order a plan's steps run. `listed`: effects (`propose`, `execute`) keep the order of
the list, each waiting for every step listed before it and holding back every step listed after
it, while the reads between two effects run together. `dependencies`: only `depends_on` and
`${steps...}` references order the steps; the rest run as soon as they can."""
