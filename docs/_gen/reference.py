"""The reference pages' tables, rendered from the code they describe, and the MkDocs hook that
puts them in place.

A reference page holds prose and markers (`<!-- generated: profile-keys -->`); at build time
`on_page_markdown` replaces each marker with what `RENDERERS` renders from the code: the
pydantic models of profiles and project files, the Typer app, the trace's event types, the CLI's
exit codes, the exceptions and the public API. Nothing in those tables is written by hand, so a
key added to a model is on its page at the next build, and a key whose model does not describe
it stops the build instead of showing up blank. `tests/test_docs_reference.py` calls the same
functions.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import types
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import griffe
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)

# Benchmark plots live beside the numbers the benchmarks write (`benchmarks/results/`); the site
# serves them from there rather than from copies that a new benchmark run would leave stale.
BENCHMARK_PLOTS = ("results.png", "io_bound.png")


# --- pydantic models: profile and project-file keys -------------------------------------------


@cache
def _module(name: str) -> griffe.Module:
    # Read from the source, as mkdocstrings reads it: attribute docstrings exist nowhere else.
    found = griffe.load(
        name, search_paths=[str(ROOT / "src"), *sys.path], docstring_parser="google"
    )
    assert isinstance(found, griffe.Module)
    return found


def _field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's description: its attribute docstring, else its entry in the class
    docstring's `Attributes:` section (Google style, as mkdocstrings reads it)."""
    cls = _module(model.__module__)[model.__name__]
    docs: dict[str, str] = {}
    if cls.docstring is not None:
        for section in cls.docstring.parsed:
            if section.kind is griffe.DocstringSectionKind.attributes:
                docs.update({item.name: item.description for item in section.value})
    for name, member in cls.members.items():
        if member.docstring is not None:
            docs[name] = member.docstring.value
    return docs


def _constraints(metadata: list[Any]) -> str:
    words = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            words.append(f"at least {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            words.append(f"more than {item.gt}")
        elif isinstance(item, annotated_types.Le):
            words.append(f"at most {item.le}")
        elif isinstance(item, annotated_types.Lt):
            words.append(f"less than {item.lt}")
    return ", ".join(words)


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}


def _type_text(annotation: Any, anchors: dict[type, str]) -> str:
    """A field's type in a YAML writer's words, linking nested models to their tables."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        inner = _type_text(args[0], anchors)
        limits = _constraints([a for meta in args[1:] for a in _metadata_of(meta)])
        return f"{inner} ({limits})" if limits else inner
    if origin in (Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a, anchors) for a in kinds)
        return f"{text} or null" if len(kinds) < len(args) else text
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in args)
    if origin is list:
        return f"list of {_type_text(args[0], anchors)}"
    if origin is dict:
        return f"mapping of {_type_text(args[0], anchors)} to {_type_text(args[1], anchors)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{anchors[annotation]})"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no words for the type {annotation!r}: teach _type_text about it")


def _metadata_of(meta: Any) -> list[Any]:
    return list(meta.metadata) if isinstance(meta, FieldInfo) else [meta]


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _nested_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """`model` and every model its fields hold, at any depth, in the order they first appear."""
    seen: list[type[BaseModel]] = []

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in seen:
                seen.append(annotation)
                for field in annotation.model_fields.values():
                    walk(field.annotation)
            return
        for arg in get_args(annotation):
            walk(arg)

    walk(model)
    yield from seen


def model_tables(model: type[BaseModel], *, titles: dict[type, str] | None = None) -> str:
    """A table of `model`'s keys, then one for each model nested in it, each key with its type,
    default and description.

    Raises:
        ValueError: A key has no description in its model's docstrings.
    """
    models = list(_nested_models(model))
    titles = titles or {}
    anchors = {m: m.__name__.lower() for m in models}
    parts = []
    for i, each in enumerate(models):
        docs = _field_docs(each)
        missing = [name for name in each.model_fields if not docs.get(name)]
        if missing:
            raise ValueError(
                f"{each.__module__}.{each.__name__}: no description of {', '.join(missing)}: "
                "describe each key in the class docstring's Attributes section"
            )
        summary = inspect.getdoc(each) or ""
        lead = summary.split("\n\n", 1)[0]
        rows = [
            f"| `{name}` | {_type_text(field.annotation, anchors)}"
            f"{_limits(field)} | {_default_text(field)} | {_cell(docs[name])} |"
            for name, field in each.model_fields.items()
        ]
        title = titles.get(each, f"`{each.__name__}`")
        heading = "" if i == 0 else f"## {title} {{#{anchors[each]}}}\n\n"
        parts.append(
            f"{heading}{' '.join(lead.split())}\n\n"
            "| key | type | default | what it does |\n|---|---|---|---|\n" + "\n".join(rows)
        )
    return "\n\n".join(parts)


def _limits(field: FieldInfo) -> str:
    limits = _constraints(field.metadata)
    return f" ({limits})" if limits else ""


def profile_keys() -> str:
    from plangate.profiles import Profile

    return model_tables(Profile)


def project_file_keys() -> str:
    from plangate.project import (
        Anchors,
        IdentitySettings,
        InboxSettings,
        MCPServer,
        MCPTools,
        OidcSettings,
        OpenAPITools,
        ProjectFile,
        PythonMocks,
        PythonTools,
        WorkersSettings,
    )

    return model_tables(
        ProjectFile,
        titles={
            PythonTools: "`tools:` entry `python:`",
            MCPTools: "`tools:` entry `mcp:`",
            MCPServer: "An MCP server (`mcpServers` entry)",
            OpenAPITools: "`tools:` entry `openapi:`",
            PythonMocks: "`fixtures:` entry `python:`",
            Anchors: "`anchors:`",
            InboxSettings: "`inbox:`",
            IdentitySettings: "`identity:`",
            OidcSettings: "`identity.oidc:`",
            WorkersSettings: "`workers:`",
        },
    )


# --- the command line -------------------------------------------------------------------------


def _params_table(command: Any, ctx: Any) -> str:
    """The parameters as `--help` lists them: name and metavar, then help with its notes
    (default, environment variable, required)."""
    records = [param.get_help_record(ctx) for param in command.get_params(ctx)]
    rows = [
        f"| `{name}` | {_cell(help_text)} |"
        for name, help_text in filter(None, records)
        if name != "--help"
    ]
    if not rows:
        return ""
    return "| parameter | what it does |\n|---|---|\n" + "\n".join(rows)


def _help_text(text: str) -> str:
    # `\b` tells click not to rewrap the paragraph after it; Markdown keeps it as written.
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.startswith("\b\n"):
            paragraphs.append("```\n" + paragraph[2:] + "\n```")
        else:
            paragraphs.append(" ".join(paragraph.split()))
    return "\n\n".join(paragraphs)


def cli_reference() -> str:
    """Every `plangate` command as `plangate COMMAND --help` tells it: usage, help, parameters."""
    from plangate.cli.app import app

    # Typer carries its own copy of click, so the commands are used by what they do.
    group: Any = typer.main.get_command(app)
    root = group.context_class(group, info_name="plangate")
    parts = [
        "## `plangate`",
        "```\n" + " ".join(["plangate", *group.collect_usage_pieces(root)]) + "\n```",
        _help_text(group.help or ""),
        _params_table(group, root),
    ]
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        assert command is not None
        ctx = command.context_class(command, info_name=name, parent=root)
        usage = " ".join(["plangate", name, *command.collect_usage_pieces(ctx)])
        parts += [
            f"## `plangate {name}`",
            f"```\n{usage}\n```",
            _help_text(command.help or ""),
            _params_table(command, ctx),
        ]
        if command.epilog:
            parts.append(_help_text(command.epilog))
    return "\n\n".join(part for part in parts if part)


# --- events, exit codes, errors ---------------------------------------------------------------


def event_types() -> str:
    from plangate.tracing import EVENT_MEANINGS, EVENT_TYPES, TraceEvent

    missing = [kind for kind in EVENT_TYPES if kind not in EVENT_MEANINGS]
    if missing:
        raise ValueError(f"plangate.tracing.EVENT_MEANINGS says nothing of {', '.join(missing)}")
    fields = ", ".join(f"`{name}`" for name in TraceEvent.__annotations__)
    rows = [f"| `{kind}` | {_cell(EVENT_MEANINGS[kind])} |" for kind in EVENT_TYPES]
    return (
        f"Every event is a `plangate.TraceEvent` dict with the keys {fields}.\n\n"
        "| type | when |\n|---|---|\n" + "\n".join(rows)
    )


def exit_codes() -> str:
    from plangate.cli.output import EXIT_MEANINGS, ExitCode

    missing = [code.name for code in ExitCode if code not in EXIT_MEANINGS]
    if missing:
        raise ValueError(f"plangate.cli.output.EXIT_MEANINGS says nothing of {missing}")
    rows = [f"| {code.value} | `{code.name}` | {_cell(EXIT_MEANINGS[code])} |" for code in ExitCode]
    return "| exit status | `ExitCode` | meaning |\n|---:|---|---|\n" + "\n".join(rows)


def _error_classes() -> list[type[Exception]]:
    from plangate import errors as module
    from plangate.project import ProjectError

    found = [getattr(module, name) for name in module.__all__]
    return [*found, ProjectError]


def _docstring_markdown(obj: type) -> str:
    """A class docstring in Markdown: its text, then its `Attributes:` as a list."""
    parsed = griffe.Docstring(inspect.getdoc(obj) or "", parser="google").parse()
    parts = []
    for section in parsed:
        if section.kind is griffe.DocstringSectionKind.text:
            parts.append(section.value)
        elif section.kind is griffe.DocstringSectionKind.attributes:
            parts.append(
                "Attributes:\n\n"
                + "\n".join(f"- `{item.name}`: {_cell(item.description)}" for item in section.value)
            )
    return "\n\n".join(parts)


def errors() -> str:
    """The exceptions as a tree under `PlangateError`, then each one's docstring."""
    classes = _error_classes()
    known = set(classes)

    def parent(cls: type) -> type | None:
        return next((base for base in cls.__mro__[1:] if base in known), None)

    ordered: list[type] = []

    def tree(under: type | None, depth: int) -> list[str]:
        lines = []
        for cls in classes:
            if parent(cls) is under:
                ordered.append(cls)
                others = [b.__name__ for b in cls.__bases__ if b not in known and b is not object]
                also = f" (also a `{'`, `'.join(others)}`)" if under and others else ""
                lines.append(f"{'    ' * depth}- [`{cls.__name__}`](#{cls.__name__.lower()}){also}")
                lines += tree(cls, depth + 1)
        return lines

    outline = tree(None, 0)
    sections = [
        f"## `{cls.__name__}` {{#{cls.__name__.lower()}}}\n\n"
        f"`{cls.__module__}.{cls.__name__}`"
        + (f", a `{parent(cls).__name__}`" if parent(cls) else "")  # type: ignore[union-attr]
        + f"\n\n{_docstring_markdown(cls)}"
        for cls in ordered
    ]
    return "\n".join(outline) + "\n\n" + "\n\n".join(sections)


# --- the Python API ---------------------------------------------------------------------------


def _public_path(name: str) -> str:
    """The path mkdocstrings finds a public name of `plangate` at: the module `plangate`
    imports it from, read from the source (nothing imported: some names need an extra)."""
    alias = _module("plangate")[name]
    if not alias.is_alias:  # defined in the package itself (`__version__`)
        return str(alias.path)
    try:
        alias.final_target  # noqa: B018 (resolving it is the check)
    except griffe.AliasResolutionError:
        # A package that serves the name from a submodule through its own `__getattr__`, as
        # `plangate.integrations` serves `GovernanceMiddleware` when `langchain` is installed.
        package = _module("plangate").modules_collection[alias.target_path.rsplit(".", 1)[0]]
        for module in package.modules.values():
            if name in module.members:
                return f"{module.path}.{name}"
        raise
    return str(alias.target_path)


def api_reference() -> str:
    """mkdocstrings' `:::` for every public name of `plangate`, grouped by the module it comes
    from, that module's docstring first; the exceptions have their own page."""
    import plangate

    by_module: dict[str, list[str]] = {}
    for name in sorted(plangate.__all__):
        path = _public_path(name)
        by_module.setdefault(path.rsplit(".", 1)[0], []).append(path)
    parts = []
    # The graph first, as a reader starts there; then the modules in alphabetical order.
    for module_path, paths in sorted(
        by_module.items(), key=lambda m: (m[0] != "plangate.graph", m)
    ):
        if module_path == "plangate.errors":
            continue
        docstring = _module("plangate").modules_collection[module_path].docstring
        lead = docstring.value.split("\n\n", 1)[0] if docstring else ""
        parts.append(f"## `{module_path}`\n\n{' '.join(lead.split())}")
        parts += [f"::: {path}" for path in paths]
    parts.append("## Errors\n\nThe exceptions are on [their own page](errors.md).")
    return "\n\n".join(parts)


RENDERERS: dict[str, Callable[[], str]] = {
    "profile-keys": profile_keys,
    "project-file-keys": project_file_keys,
    "cli": cli_reference,
    "event-types": event_types,
    "exit-codes": exit_codes,
    "errors": errors,
    "api": api_reference,
}


def render(markdown: str) -> str:
    """`markdown` with each marker replaced by what its renderer makes.

    Raises:
        KeyError: A marker names no renderer.
    """
    return MARKER.sub(lambda match: RENDERERS[match.group(1)](), markdown)


# --- the MkDocs hook --------------------------------------------------------------------------


def on_page_markdown(markdown: str, **_: Any) -> str:
    return render(markdown)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for name in BENCHMARK_PLOTS:
        files.append(
            File.generated(
                config,
                f"performance/{name}",
                abs_src_path=str(ROOT / "benchmarks" / "results" / name),
            )
        )
    return files
