"""The `sanctions` command: its commands, and the client that asks a running server."""
