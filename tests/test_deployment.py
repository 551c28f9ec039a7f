"""The deployment files: docker-compose.yml runs real commands, and the Dockerfile copies
into the image everything that `pip install .` needs there.

No Docker here: the image's /app is laid out from the Dockerfile's COPY lines, then
built with setuptools' `build_py` (what a wheel installs, without needing the `wheel`
package or the network) and compared with the same build of the whole project.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml
from typer.main import get_command

from api.cli.main import app

pytestmark = pytest.mark.e2e  # builds the package as the image would, in subprocesses

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "projections", "api")
PACKAGE_FILES = (".py", ".html", ".js", ".css", ".jsonl")
SETUP = "from setuptools import setup; setup()"  # what setuptools' build backend runs
TIMELINE = Path("api", "app", "data", "timeline.jsonl")
"""The bundled timeline, where the package keeps it."""


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
    # The signing key is a mounted secret, not something in the database or the image.
    assert services["api"]["secrets"] == ["signing_key"]
    key_file = services["api"]["environment"]["SANCTIONS_SIGNING_KEY_FILE"]
    assert key_file == "/run/secrets/signing_key"
    assert compose["secrets"]["signing_key"]["file"] == "./secrets/signing.key"
    assert "secrets" not in services["projector"]  # the projector never signs


def project_files() -> list[str]:
    """The files of the build context: tracked or new, not ignored (no caches, no venv)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the project's files are listed with git: {error}")
    return sorted(name for name in listed if (ROOT / name).is_file())


def copy_files(names: list[str], into: Path) -> Path:
    for name in names:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, into / name)
    return into


def image_layout(into: Path) -> Path:
    """The image's WORKDIR as the Dockerfile's COPY lines (before `pip install`) leave it."""
    files = project_files()
    workdir = PurePosixPath("/")
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "WORKDIR":
            workdir = workdir / rest.strip()
        if instruction.upper() == "RUN" and "pip install" in rest:
            break
        if instruction.upper() != "COPY":
            continue
        *sources, target = [word for word in shlex.split(rest) if not word.startswith("--")]
        assert not any("*" in source or "?" in source for source in sources), line
        destination = PurePosixPath(workdir, target)
        for source in (s.strip("/").removeprefix("./") for s in sources):
            # A directory's contents go into the destination; a file goes into it if
            # the destination ends with "/" or several sources are named, else becomes it.
            inside = [name for name in files if name.startswith(f"{source}/")]
            found = inside or [name for name in files if name == source]
            assert found, f"the Dockerfile copies {source}, which the project does not have"
            for name in found:
                if inside:
                    placed = destination / PurePosixPath(name).relative_to(source)
                elif target.endswith("/") or len(sources) > 1:
                    placed = destination / PurePosixPath(name).name
                else:
                    placed = destination
                path = into / placed.relative_to("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / name, path)
    return into / workdir.relative_to("/")


def built_package(source: Path, into: Path) -> dict[str, bytes]:
    """What `pip install` of `source` puts in site-packages (besides its metadata)."""
    built = subprocess.run(
        [sys.executable, "-c", SETUP, "-q", "build_py", "--build-lib", str(into)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "No module named 'setuptools'" in built.stderr:
        pytest.skip("setuptools is not installed in this environment")
    assert built.returncode == 0, built.stderr
    return {
        path.relative_to(into).as_posix(): path.read_bytes()
        for path in sorted(into.rglob("*"))
        if path.is_file()
    }


def run_python(code: str, *, path: Path, cwd: Path) -> str:
    """`python -c code` importing the project only from `path` (-P: not from `cwd`;
    the check: not from an editable install of the project either)."""
    only_from_path = (
        f"import {', '.join(PACKAGES)}\n"
        f"for package in ({', '.join(PACKAGES)},):\n"
        f"    assert package.__file__.startswith({str(path)!r}), package.__file__\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", only_from_path + code],
        cwd=cwd,
        env={"PYTHONPATH": str(path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_image_copies_everything_pip_install_needs(tmp_path: Path) -> None:
    in_image = built_package(image_layout(tmp_path / "image"), tmp_path / "image-site")
    whole = copy_files(project_files(), tmp_path / "project")
    from_project = built_package(whole, tmp_path / "project-site")
    needed = {
        name
        for name in project_files()
        if name.split("/")[0] in PACKAGES and name.endswith(PACKAGE_FILES)
    }
    assert needed - set(from_project) == set()  # every module, template and static file
    assert sorted(in_image) == sorted(from_project)
    assert in_image == from_project


def test_the_image_holds_the_bundled_timeline_the_seed_reads(tmp_path: Path) -> None:
    image = image_layout(tmp_path / "image")
    bundled = (ROOT / TIMELINE).read_text(encoding="utf-8")
    assert (image / TIMELINE).read_text(encoding="utf-8") == bundled
    events = [line for line in bundled.splitlines() if line.strip()]
    loaded = run_python(
        "from api.app.seed import bundled_events; print(len(bundled_events()))",
        path=image,
        cwd=tmp_path,
    )
    assert int(loaded) == len(events) > 0


def test_the_installed_package_finds_the_bundled_timeline(tmp_path: Path) -> None:
    image = image_layout(tmp_path / "image")
    site = tmp_path / "site"
    built_package(image, site)
    loaded = run_python(
        "from api.app.seed import bundled_events; print(len(bundled_events()))",
        path=site,
        cwd=image,
    )
    bundled = (ROOT / TIMELINE).read_text(encoding="utf-8")
    assert int(loaded) == len([line for line in bundled.splitlines() if line.strip()])
