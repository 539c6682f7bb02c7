"""The `plangate` command line: the commands of `plangate.cli.commands` put together, and the
entry point that turns every user error into one line.

Every command works on a project (`plangate.yaml`, see `plangate.project`): the one `--project`
or `PLANGATE_PROJECT` names, else the one in the current folder or its nearest parent, else the
built-in demo. A run goes on under the project it started under, from any folder.

Every user error (a missing file, a bad plan, an unknown thread, nothing pending) is one line on
stderr and exit status 1; tracebacks are for bugs only. `ExitCode` says what every other exit
status means. Everything printed goes through `say`, which writes the control, bidi and other
invisible characters of plan- or tool-supplied text as visible escapes: a plan must not be able
to hide or rewrite what the person approving it reads.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any

import typer

from plangate.cli.commands import (
    agents,
    deciding,
    identity,
    maintenance,
    project,
    reading,
    running,
    workers,
)
from plangate.cli.output import (
    EXIT_HELP,
    RUN_EXITS,
    ExitCode,
    OutputClosed,
    Stopped,
    warn,
)
from plangate.errors import (
    InvalidDecision,
    NotStopped,
    PlangateError,
    ProfileMismatch,
    RunNotFinished,
    UnknownThread,
)

__all__ = ("app", "cli_message", "main")

app = typer.Typer(
    help="Run LLM-made plans of tool calls under governance: budgets, approvals, traces.\n\n"
    + EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the rich one shows flags as `--offline <bool>` and eats `[server]` as markup.
    rich_markup_mode=None,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from plangate import __version__

        print(f"plangate {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show what MCP servers write to stderr (else they write to plangate-mcp.log "
            "in their working folder, the project's).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    # The name `plangate.adapters.mcp.SERVER_LOG_VARIABLE` holds: that module is not imported
    # here, as it loads the MCP client stack, which most commands do not use.
    if verbose:
        os.environ.pop("PLANGATE_MCP_LOG", None)
    else:
        os.environ.setdefault("PLANGATE_MCP_LOG", "plangate-mcp.log")


# The commands, in the order `plangate --help` lists them.
_DECIDED_EXITS = RUN_EXITS.replace("5 failed, ", "5 failed, 6 decided too late, ")
app.command(epilog=RUN_EXITS)(running.run)
app.command()(project.check)
app.command()(project.tools)
app.command()(project.init)
app.command()(reading.pending)
app.command()(reading.runs)
app.command()(deciding.expire)
app.command(epilog=_DECIDED_EXITS)(deciding.approve)
app.command(epilog=_DECIDED_EXITS)(deciding.reject)
app.command(epilog=RUN_EXITS)(running.resume)
app.command()(reading.show)
app.command()(reading.trace)
app.command(epilog="Exit status: 0 the chain holds, 7 it breaks, 1 user error.")(maintenance.verify)
app.command()(maintenance.audit)
app.command()(maintenance.prune)
app.add_typer(identity.tokens, name="tokens")
app.command()(project.serve)
app.command()(workers.worker)
app.command()(workers.jobs)
app.command()(agents.mcp)


# --- the entry point --------------------------------------------------------------------------


def cli_message(exc: PlangateError) -> str:
    """An error in the CLI's words: some of the library's hints name Python calls
    (`Command(resume=...)`), which a person at the command line cannot make."""
    hint = exc.hint
    if isinstance(exc, RunNotFinished):
        thread = exc.thread_id
        hint = (
            f"decide it first with `plangate approve {thread}` or `plangate reject {thread}`, "
            "or start the plan with another --thread"
            if exc.waiting
            else f"finish it first with `plangate resume {thread}`, "
            "or start the plan with another --thread"
        )
    elif isinstance(exc, NotStopped):
        hint = (
            "use `plangate approve` or `plangate reject`"
            if exc.waiting
            else "`plangate show THREAD` prints its result"
        )
    elif isinstance(exc, UnknownThread):
        hint = "`plangate runs --all` lists the runs in the database"
    elif isinstance(exc, ProfileMismatch):
        hint = "it goes on only under the rules it started under: restore its profile file"
    elif isinstance(exc, InvalidDecision) and exc.field == "interrupt_id":
        hint = "name one with --step STEP_ID, or decide each as printed with --all"
    elif isinstance(exc, InvalidDecision) and exc.hint == InvalidDecision.EDIT_HINT:
        hint = (
            "fix those args and give --args again: the run still waits; "
            "`plangate show THREAD` prints the args it was asked with"
        )
    elif hint and any(call in hint for call in _PYTHON_CALLS):
        hint = None  # advice for a program, not for the person at the command line
    return f"{exc.message} ({hint})" if hint else exc.message


_PYTHON_CALLS = ("Command(", "invoke(", "build_graph(", "open_checkpointer(")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left in its buffer at exit does not
    print a `BrokenPipeError` of its own."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _command_line_error(exc: typer.TyperException) -> int:
    """The command line itself is wrong: one line, as for any user error, and click's status."""
    message = exc.format_message().strip()
    if "\n" in message:  # `plangate` alone: its help is the answer
        _warn_raw(message)
        return exc.exit_code
    context = getattr(exc, "ctx", None)
    command = getattr(context, "command_path", None) or "plangate"
    warn(f"plangate: error: {message.removesuffix('.')} (see `{command} --help`)")
    return exc.exit_code if exc.exit_code != ExitCode.USER_ERROR else ExitCode.COMMAND_LINE


def _warn_raw(text: str) -> None:
    with contextlib.suppress(OSError):
        typer.echo(text, err=True)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 1; a run
    stopped by Ctrl-C or a closed stdout says how to go on (`ExitCode`)."""
    status: Any
    try:
        status = app(standalone_mode=False)
    except PlangateError as exc:
        warn(f"plangate: error: {cli_message(exc)}")
        status = ExitCode.USER_ERROR
    except Stopped as stopped:
        if stopped.code == ExitCode.OUTPUT_CLOSED:
            _silence_stdout()
        warn(stopped.line)
        status = stopped.code
    except OutputClosed:  # a listing cut short (`plangate trace THREAD | head`): nothing to say
        _silence_stdout()
        status = ExitCode.OUTPUT_CLOSED
    except typer.TyperException as exc:
        status = _command_line_error(exc)
    except typer.Abort:  # end of input at a prompt
        status = ExitCode.INTERRUPTED
    sys.exit(int(status) if isinstance(status, int) else ExitCode.SUCCESS)
