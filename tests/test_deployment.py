"""The deployment files: docker-compose.yml parses and runs real commands."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.main import get_command

from api.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_has_postgres_api_and_projector_running_real_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "api", "projector"} <= set(services)
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in ("api", "projector"):
        command = services[name]["command"]
        assert command[0] == "sanctions" and command[1] in commands, (name, command)
        assert services[name]["environment"]["SANCTIONS_DATABASE_URL"].startswith("postgresql://")
    assert services["api"]["environment"]["SANCTIONS_EMBEDDED_PROJECTOR"] == "false"
    assert (ROOT / "Dockerfile").read_text().count("COPY") >= 4
