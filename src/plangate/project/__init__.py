"""The project file, `plangate.yaml`: where a team's tools, profiles and runs are, for every face
(the CLI, the inbox, LangGraph's server) and every process that goes on with a run.

```yaml
db: sqlite:///plangate.db            # or postgresql://...; relative paths: from this file
profile: smb                         # the default for new runs
profiles: profiles/                  # extra profile files, named by file name (strict.yaml: strict)
tools:
  - python: myapp.tools:toolkit      # a list/mapping of tools, or a callable returning one
  - mcp: .mcp.json                   # an mcpServers file; each server's name is its tools' prefix
  - mcp: {fs: {command: npx, args: ["-y", "@modelcontextprotocol/server-filesystem", "./data"]}}
  - openapi: https://billing.internal/openapi.json
    prefix: billing
    include: ["get*", "createRefund"]
    headers: {Authorization: "Bearer ${BILLING_TOKEN}"}
fixtures: [fixtures.yaml]            # mocks for --offline and mock_fallback
anchors: {file: /var/log/plangate/anchors.jsonl}   # or {otel: true}: each run's head, kept
                                     # outside the database (`plangate.runs.anchors`)
inbox: {max_body_bytes: 16777216}    # plangate serve refuses larger request bodies (413)
identity:                            # who decides is known, not typed (`plangate.identity`)
  signing_key: ${PLANGATE_SIGNING_KEY}   # doors sign decisions, the graph and verify check
  oidc: {issuer: https://id.example.com, client_id: plangate, client_secret: ${OIDC_SECRET}}
```

`${VAR}` is read from the environment when the part that holds it is used (`$${` is a literal
`${`), and `${PROJECT_DIR}` is the folder of the file. What `${VAR}` gives is never stored: a run
records the project's path and fingerprint (of the file as written), its profile, offline mode
and fixtures (`RunSetup`), so `approve` and `resume` rebuild the same graph in any process.

Python toolkits are imported when a graph is built; an MCP server or an OpenAPI document is
reached only when a run needs one of its tools (`LazyTools`): reading runs reaches none.

Importing this package reaches for neither LangGraph's graph machinery nor LangChain's tools:
they are imported where a graph or a tool is made, so a command that only reads runs (finding
its project and database) starts in a small part of a second.

One module per part: `_spec` (what the file may say), `_read` (reading and checking it),
`_expand` (`${VAR}`), `_find` (where the file is; the demo and templates), `_profiles` (the
project's own), `_tools` (Python toolkits, MCP servers, OpenAPI documents, mocks), `_graphs`
(building graphs), `_setup` (`RunSetup`), `_project` (`Project`, the class that joins them),
`_errors` (`ProjectError`).
"""

from plangate.project._errors import ProjectError
from plangate.project._find import PROJECT_ENV, demo_root, template, write_template
from plangate.project._graphs import reader
from plangate.project._project import Project
from plangate.project._setup import SETUP_KEY, RunSetup
from plangate.project._spec import (
    DEFAULT_MAX_BODY_BYTES,
    PROJECT_FILE,
    Anchors,
    IdentitySettings,
    ImportPath,
    InboxSettings,
    MCPServer,
    MCPTools,
    OidcSettings,
    OpenAPITools,
    ProjectFile,
    PythonMocks,
    PythonTools,
    ToolEntry,
    WorkersSettings,
)

__all__ = (
    "DEFAULT_MAX_BODY_BYTES",
    "PROJECT_ENV",
    "PROJECT_FILE",
    "SETUP_KEY",
    "Anchors",
    "ImportPath",
    "IdentitySettings",
    "InboxSettings",
    "OidcSettings",
    "MCPServer",
    "MCPTools",
    "OpenAPITools",
    "Project",
    "ProjectError",
    "ProjectFile",
    "PythonMocks",
    "PythonTools",
    "RunSetup",
    "ToolEntry",
    "WorkersSettings",
    "demo_root",
    "reader",
    "template",
    "write_template",
)
