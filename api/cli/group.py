"""The `sanctions` command group's class: whole-sentence summaries in `--help`, and
options checked without importing pydantic when they are absent (`sanctions --help`
answers at once)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from typer.core import TyperGroup


class UnlessAbsent:
    """A Typer parameter's value check, built only for a value that is there: what Typer
    does first for an absent one (None stays None) needs no pydantic."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build

    def itself(self) -> UnlessAbsent:
        return self

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None and not (param.multiple or param.nargs == -1):
            return None
        return self.build().coerce(value, param=param, ctx=ctx)


class SanctionsGroup(TyperGroup):
    """The `sanctions` group. Typer checks each value with a pydantic TypeAdapter built on
    first use, even an absent option's, so parsing the global options alone would import
    pydantic (~0.1 s) for `sanctions status --help`; absent ones are now let through
    without it, as Typer itself would let them through."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command, its summary in `--help`'s list of commands being the first
        paragraph of its help joined into one line: Typer keeps the docstring's own line
        breaks there, which break a sentence wherever the source line ended."""
        command = super().get_command(ctx, cmd_name)
        if command is not None and command.short_help is None and command.help:
            first = inspect.cleandoc(command.help).partition("\f")[0].split("\n\n")[0]
            command.short_help = " ".join(first.split())
        return command

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        for param in params:
            build = getattr(param, "get_runtime_param", None)
            if callable(build) and not isinstance(getattr(build, "__self__", None), UnlessAbsent):
                param.get_runtime_param = UnlessAbsent(build).itself
        return params
