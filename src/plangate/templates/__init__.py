"""Project templates `plangate init` writes: `starter` (a toolkit of your own) and `demo`."""
