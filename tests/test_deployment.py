"""The deployment files: docker-compose.yml runs real commands, and the Dockerfile copies
into the image everything that `pip install .` needs there. docker-compose.ha.yml (the
high-availability profile) builds every image it runs, its etcd members and Patroni nodes
name each other, every URL the service is given names every Patroni node and asks for the
primary (or, for reads, a standby), and Patroni's own validator accepts each node's
configuration.

No Docker here: the image's /app is laid out from the Dockerfile's COPY lines, then
built with setuptools' `build_py` (what a wheel installs, without needing the `wheel`
package or the network) and compared with the same build of the whole project.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from typer.main import get_command

from api.cli.main import app
from domain.store.config import PostgresURL

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


HA = ROOT / "docker-compose.ha.yml"
CLUSTER_IMAGE = Path("deploy", "patroni")
"""The build context of the HA profile's etcd and PostgreSQL nodes."""


def ha_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(HA.read_text())["services"]
    return services


def interpolated(value: str) -> str:
    """`${NAME:-default}` as `docker compose` reads it with NAME unset: the default."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda found: found.group(1) or "", value)


def patroni_members(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The PostgreSQL nodes under Patroni (the cluster image's default command): each
    one's environment by service name."""
    return {
        name: service["environment"]
        for name, service in services.items()
        if service.get("build") == CLUSTER_IMAGE.as_posix() and "command" not in service
    }


def test_ha_compose_file_runs_every_service_from_an_image_it_builds() -> None:
    services = ha_services()
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name, service in services.items():
        assert (ROOT / service["build"] / "Dockerfile").is_file(), name
        if service["build"] == ".":  # the service's own image: real `sanctions` commands
            command = service["command"]
            assert command[0] == "sanctions" and command[1] in commands, (name, command)
    etcd = {name for name, service in services.items() if service.get("command") == ["etcd"]}
    members = patroni_members(services)
    assert len(etcd) == 3 and len(members) == 3  # majorities that survive one loss
    apps = {name for name, service in services.items() if service["build"] == "."}
    assert set(services) == etcd | set(members) | apps
    assert [services[name]["command"][1] for name in sorted(apps)].count("project") == 1


def test_ha_etcd_members_and_patroni_nodes_name_each_other() -> None:
    services = ha_services()
    etcd = {
        name: service["environment"]
        for name, service in services.items()
        if service.get("command") == ["etcd"]
    }
    peers = {f"{name}=http://{name}:2380" for name in etcd}
    for name, environment in etcd.items():
        assert environment["ETCD_NAME"] == name
        assert environment["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == f"http://{name}:2380"
        assert environment["ETCD_ADVERTISE_CLIENT_URLS"] == f"http://{name}:2379"
        assert set(environment["ETCD_INITIAL_CLUSTER"].split(",")) == peers
    for name, environment in patroni_members(services).items():
        assert environment["PATRONI_NAME"] == name
        assert environment["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{name}:5432"
        assert environment["PATRONI_RESTAPI_CONNECT_ADDRESS"] == f"{name}:8008"
        assert set(environment["PATRONI_ETCD3_HOSTS"].split(",")) == {f"{e}:2379" for e in etcd}
        assert set(services[name]["depends_on"]) == set(etcd)


def test_ha_service_urls_name_every_patroni_member_and_ask_for_the_primary() -> None:
    services = ha_services()
    members = patroni_members(services)
    addresses = sorted(env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] for env in members.values())
    password = {interpolated(env["SANCTIONS_DB_PASSWORD"]) for env in members.values()}
    wanted = {"DATABASE": "read-write", "READ_DATABASE": "prefer-standby"}
    seen = set()
    for name, service in services.items():
        if service["build"] != ".":
            continue
        assert set(service["depends_on"]) == set(members), name
        for kind, attrs in wanted.items():
            url = service["environment"].get(f"SANCTIONS_{kind}_URL")
            if url is None:
                continue
            seen.add(kind)
            libpq = PostgresURL.parse(interpolated(url)).libpq  # as the service reads it
            hosts = zip(libpq["host"].split(","), libpq["port"].split(","), strict=True)
            assert sorted(f"{host}:{port}" for host, port in hosts) == addresses, (name, kind)
            assert libpq["target_session_attrs"] == attrs, (name, kind)
            # The role and database deploy/patroni/post-init.sh creates, with its password.
            assert (libpq["user"], libpq["dbname"]) == ("sanctions", "sanctions")
            assert {libpq["password"]} == password
        if service["command"][1] == "serve":
            assert service["environment"]["SANCTIONS_EMBEDDED_PROJECTOR"] == "false"
            assert service["secrets"] == ["signing_key"]
        else:
            assert "secrets" not in service  # the projector never signs
    assert seen == set(wanted)  # one API reads from the standbys


def test_ha_cluster_image_holds_what_its_patroni_configuration_names() -> None:
    dockerfile = (ROOT / CLUSTER_IMAGE / "Dockerfile").read_text()
    for package in ("postgresql-15", "patroni", "etcd-server"):
        assert re.search(rf"apt-get install [^&]*\b{package}\b", dockerfile), package
    copied = dict(
        shlex.split(line)[1:3] for line in dockerfile.splitlines() if line.startswith("COPY ")
    )
    for source in copied:
        assert (ROOT / CLUSTER_IMAGE / source).is_file(), source
    config = yaml.safe_load((ROOT / CLUSTER_IMAGE / "patroni.yml").read_text())
    assert copied["patroni.yml"] == "/etc/patroni/patroni.yml"
    assert dockerfile.rstrip().endswith('CMD ["patroni", "/etc/patroni/patroni.yml"]')
    assert copied["post-init.sh"] == config["bootstrap"]["post_init"]
    assert config["postgresql"]["bin_dir"] == "/usr/lib/postgresql/15/bin"
    dcs = config["bootstrap"]["dcs"]
    # No acknowledged write lost: only a synchronous standby is promoted, and a commit
    # waits for it (docs/operations.md, "Failover with Patroni").
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["parameters"]["synchronous_commit"] in ("on", "remote_apply")
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    # The data directory is inside every node's volume.
    for name, service in ha_services().items():
        if name in patroni_members(ha_services()):
            mounted = service["volumes"][0].split(":")[1]
            assert config["postgresql"]["data_dir"].startswith(f"{mounted}/")


def test_patroni_validates_every_members_configuration() -> None:
    """Patroni's own check of each node's configuration (the file and the node's
    environment) finds nothing wrong but what holds only inside the compose network:
    etcd's host names, and port 5432 taken on this machine."""
    patroni = shutil.which("patroni")
    if patroni is None:
        pytest.skip("no patroni here (Debian's package; .ci/ensure-packages installs it)")
    outside = ("Name or service not known", "is not reachable", "is already in use")
    for name, environment in patroni_members(ha_services()).items():
        checked = subprocess.run(
            [patroni, "--validate-config", str(ROOT / CLUSTER_IMAGE / "patroni.yml")],
            env={"PATH": "/usr/bin:/bin", **{k: interpolated(v) for k, v in environment.items()}},
            capture_output=True,
            text=True,
            timeout=120,
        )
        found = (checked.stdout + checked.stderr).splitlines()
        problems = [line for line in found if line.strip()]
        assert all(any(word in line for word in outside) for line in problems), (name, problems)
