"""The `plangate` command, a face for people: run plans with a project's tools, list, approve,
inspect, serve the inbox.

`app` holds the commands; `where` finds a command's project and database and reads its runs;
`drive` runs a graph from the command line; `describe` turns runs and reports into lines;
`output` is the one way out (escaped text, exit codes). Every user error is one line on stderr
and exit status 1; tracebacks are for bugs only.
"""

from plangate.cli.app import app, cli_message, main
from plangate.cli.describe import describe, step_positions
from plangate.cli.output import EXIT_MEANINGS, ExitCode, human_duration, json_line, visible

__all__ = (
    "EXIT_MEANINGS",
    "ExitCode",
    "app",
    "cli_message",
    "describe",
    "human_duration",
    "json_line",
    "main",
    "step_positions",
    "visible",
)
