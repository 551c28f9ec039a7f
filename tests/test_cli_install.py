"""After `make install`, the README's `sanctions …` commands work as written."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.test_cli import ROOT

pytestmark = pytest.mark.e2e  # the README's install commands, in bash

README = (ROOT / "README.md").read_text()
EXPORT = 'export PATH="$PWD/.venv/bin:$PATH"'


def command_line_section() -> str:
    return README.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]


def readme_commands() -> list[list[str]]:
    """Each command a `sanctions …` line of the Command line section runs: its words up
    to the first argument or option (`token create`), global options left out."""
    commands = []
    for line in command_line_section().splitlines():
        line = line.removeprefix("$ cd /tmp && ").removeprefix("$ ")
        if not line.startswith("sanctions "):
            continue
        for part in line.split("#")[0].removeprefix("sanctions ").split(" | "):
            words = part.split()
            while words[0] in ("--database", "--url"):
                words = words[2:]
            for alternative in words[0].split("|"):  # status|timeline|…
                commands.append(
                    [alternative, words[1]] if alternative == "token" else [alternative]
                )
    return commands


def test_make_install_prints_how_to_put_sanctions_on_path() -> None:
    # -o: the virtualenv counts as installed; only what `install` itself adds runs.
    installed = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "install"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert installed.returncode == 0, installed.stderr
    assert EXPORT.replace("$PWD", str(ROOT)) in installed.stdout
    assert "make install" in command_line_section() and EXPORT in command_line_section()


def test_the_readmes_commands_run_as_written_once_path_is_set() -> None:
    commands = readme_commands()
    assert {"serve", "seed", "status", "replay", "verify", "import", "export"} <= {
        command[0] for command in commands
    }
    assert ["token", "list"] in commands
    script = "\n".join(
        [EXPORT, *(f"sanctions {' '.join(command)} --help >/dev/null" for command in commands)]
    )
    bare = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "COLUMNS": "100"}
    ran = subprocess.run(
        ["bash", "-e", "-c", script], cwd=ROOT, env=bare, capture_output=True, text=True
    )
    assert ran.returncode == 0, (script, ran.stderr)
    assert not re.search(r"(?m)^sanctions ", ran.stdout)
