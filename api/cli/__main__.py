"""`python -m api.cli`: the `sanctions` command."""

from api.cli.main import app

app()
