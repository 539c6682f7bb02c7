"""The `plangate` commands, by family: `running`, `deciding`, `reading`, `maintenance` and
`project`. `plangate.cli.app` puts them on the command line."""
