"""The documentation's examples, run as written.

Every ```console block of README.md, and of each page under docs/, is part of one shell
session per file: its commands (`$ ` lines, with the lines that continue them) run top to
bottom in one bash process started in the checkout, as a reader would paste them, and each
command's output (standard output and standard error, as a terminal shows them) must be
the output the file shows after it. A file's session is its own: a page that needs a
database, a server or a token sets them up itself, so each page can be read (and run)
alone. Blocks marked ```sh or ```text are illustrations, not run.

Only what differs from run to run is normalised, on both sides, before comparing: ids,
hashes, tokens and recording times (each distinct value to a placeholder of the same
length, numbered in order of appearance, so a value that appears twice must appear twice),
durations and rates, the temporary folder's name, and the servers' ports (the files say
8001, 9001 and 9002; the test uses free ports of as many digits). Everything else must
match exactly, including how Rich wraps a table at 80 columns.

Each file makes its own scratch database in a new temporary folder; in case a command ran
before that, the session starts with SANCTIONS_DATABASE_URL on a scratch file of the test's
own, so nothing here can touch ./data/sanctions.db. Every process the session leaves
running (a `sanctions serve … &`) is killed at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# Servers on the ports the documents show: one xdist worker. The sessions are slow (conftest).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("shown_ports")]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SHOWN_PORTS = (8001, 9001, 9002)
"""The ports the files' examples use; each is replaced by a free port of as many digits."""
TOUR_FOLDER = re.compile(r"/tmp/tmp\.[A-Za-z0-9]{10}")
"""What `mktemp -d` makes under TMPDIR=/tmp: the name differs each run, its length never."""
TIMEOUT = 150
MARK = "@@readme-command-{}@@"


@dataclass(frozen=True)
class Example:
    line: int
    """Where the command starts in its file (1-based)."""
    command: str
    expected: str


def is_complete(command: str) -> bool:
    """Whether the shell would run `command` as it stands: no quote left open and no
    trailing backslash (either makes the next line part of it)."""
    try:
        shlex.split(command)
    except ValueError:
        return False
    return not command.endswith("\\")


def console_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each ```console block: the line number of its first line, and its lines."""
    lines = text.splitlines()
    opening = None
    for number, line in enumerate(lines, start=1):
        if opening is None and line.strip() == "```console":
            opening = number
        elif opening is not None and line.strip() == "```":
            yield opening + 1, lines[opening : number - 1]
            opening = None


def examples(text: str, name: str = "README.md") -> list[Example]:
    """The commands of every ```console block, in order, with the output shown after each
    (`name`: the file, for the message if a block has output before any command)."""
    found: list[Example] = []
    for first, lines in console_blocks(text):
        starts: list[tuple[int, list[str], list[str]]] = []  # line, command, output
        for number, line in enumerate(lines, start=first):
            if starts and not is_complete("\n".join(starts[-1][1])):
                starts[-1][1].append(line)
            elif line.startswith("$ "):
                starts.append((number, [line[2:]], []))
            else:
                assert starts, f"{name}:{number}: output before any command"
                starts[-1][2].append(line)
        found += [Example(at, "\n".join(cmd), "\n".join(out)) for at, cmd, out in starts]
    return found


def script(commands: list[str]) -> str:
    """One bash script running the commands in turn, a marker before each one's output;
    `$?` is carried over the marker, so `echo $?` reports the command before it."""
    parts = ["__status=0"]
    for number, command in enumerate(commands):
        parts.append(f"printf '\\n%s\\n' '{MARK.format(number)}'; (exit $__status)")
        parts.append(command)
        parts.append("__status=$?")
    parts.append(f"printf '\\n%s\\n' '{MARK.format('end')}'; pwd")
    return "\n".join(parts) + "\n"


def outputs(transcript: str, count: int) -> tuple[list[str], str]:
    """Each command's output, and the folder the session ended in."""
    found: list[str] = []
    rest = transcript
    for number in [*range(count), "end"]:
        before, marker, rest = rest.partition(f"\n{MARK.format(number)}\n")
        assert marker, f"the session stopped before command {number}:\n{before[-2000:]}"
        if number != 0:
            found.append(before)
    return found, rest.strip()


def free_ports() -> dict[int, int]:
    """For each shown port, itself if nothing listens there, else another free port written
    with as many digits (a port's length changes how a table title wraps); no two alike."""
    chosen: dict[int, int] = {}
    for shown in SHOWN_PORTS:
        for port in range(shown, 10 ** len(str(shown))):
            if port in chosen.values() or (port in SHOWN_PORTS and port != shown):
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            chosen[shown] = port
            break
        else:
            raise AssertionError(f"no free port for {shown}")
    return chosen


def with_ports(command: str, ports: dict[int, int]) -> str:
    """The command with each shown port replaced by the port the test uses."""
    pattern = "|".join(str(shown) for shown in ports)
    return re.sub(rf"(?<=[:\s])({pattern})\b", lambda m: str(ports[int(m.group(1))]), command)


def shown_ports(output: str, ports: dict[int, int]) -> str:
    """The output with each port the test used written as the file shows it."""
    back = {used: shown for shown, used in ports.items()}
    pattern = "|".join(str(used) for used in back)
    return re.sub(rf"(?<=:)({pattern})\b", lambda m: str(back[int(m.group(1))]), output)


def wrapped(pattern: str) -> str:
    """`pattern`, a run of single-character items, allowing a line break after any one of
    them: Rich breaks a word longer than the line wherever the line ends."""
    items = re.findall(r"\[[^\]]+\](?:\{\d+\})?|\\.|.", pattern)
    out = []
    for item in items:
        repeat = re.fullmatch(r"(\[[^\]]+\])\{(\d+)\}", item)
        if repeat:
            out.extend([repeat.group(1) + "\n?"] * int(repeat.group(2)))
        else:
            out.append(item + "\n?")
    return "".join(out)


HEX = "[0-9a-f]"
UUID = wrapped(f"{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}")
HASH = wrapped(f"{HEX}{{64}}")
TOKEN = wrapped("st_[A-Za-z0-9_-]{43}")
MOMENT = wrapped(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")
VOLATILE = re.compile(
    rf"(?<![0-9A-Za-z_-])(?:{UUID}|{HASH}|{TOKEN}|{MOMENT}(?:Z|\+00:00))(?![0-9A-Za-z_])"
)
"""Values that differ each run: event ids, hashes, tokens, recording times (a moment the
file gives, such as a midnight `known_at`, is not one of them)."""
FIXED = re.compile(r"0{64}|[0-9-]{10}T00:00:00\.000000(?:Z|\+00:00)")
DURATIONS = [
    (re.compile(r'"seconds":\s?[0-9.]+(?:e-?[0-9]+)?'), '"seconds":S'),
    (re.compile(r'"ms":\s?[0-9.]+'), '"ms":S'),
    (re.compile(r"in [0-9.]+ s \([0-9,]+ events/s\)"), "in S s (R events/s)"),
    (re.compile(r"(\d+/\d+) \d+:\d\d:\d\d$", re.M), r"\1 H:MM:SS"),
]


class Placeholders:
    """Each distinct volatile value to `<n>` (n in order of first appearance) padded with
    `#` to the value's own length, so wrapping is kept and a value repeated is seen
    repeated."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, match: re.Match[str]) -> str:
        raw = match.group(0)
        value = raw.replace("\n", "")
        if FIXED.fullmatch(value):
            return raw
        if value not in self.seen:
            name = f"<{len(self.seen)}>"
            self.seen[value] = name + "#" * (len(value) - len(name))
        placeholder = self.seen[value]
        breaks = [at for at, char in enumerate(raw) if char == "\n"]
        for offset, at in enumerate(breaks):  # the breaks where they were
            placeholder = placeholder[: at - offset] + "\n" + placeholder[at - offset :]
        return placeholder


def normaliser() -> Callable[[str], str]:
    placeholders = Placeholders()

    def normal(text: str) -> str:
        text = text.replace("\r\n", "\n")
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
        text = TOUR_FOLDER.sub("/tmp/tmp.XXXXXXXXXX", text)
        text = VOLATILE.sub(placeholders, text)
        for pattern, replacement in DURATIONS:
            text = pattern.sub(replacement, text)
        return text

    return normal


def environment(scratch: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SANCTIONS_")
        and name not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "PYTHONPATH")
    }
    venv_bin = Path(sys.executable).parent
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        SANCTIONS_DATABASE_URL=f"sqlite:///{scratch}/scratch.db",
        COLUMNS="80",
        TMPDIR="/tmp",
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
        TERM="dumb",
    )
    return env


Run = Callable[[list[str]], tuple[list[str], str]]


@contextmanager
def bash_session(scratch: Path) -> Iterator[Run]:
    """Runs commands in one bash session in a process group of its own; every process
    of the group is killed at the end, and the tour's folder removed."""
    started: list[subprocess.Popen[str]] = []
    folders: list[Path] = []

    def run(commands: list[str]) -> tuple[list[str], str]:
        session_script = scratch / "readme.sh"
        session_script.write_text(script(commands), encoding="utf-8")
        shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc", str(session_script)],
            cwd=ROOT,
            env=environment(scratch),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        started.append(shell)
        try:
            transcript, _ = shell.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_group(shell.pid)
            transcript, _ = shell.communicate()
            raise AssertionError(
                f"the session took over {TIMEOUT} s:\n{transcript[-3000:]}"
            ) from None
        found, folder = outputs(transcript, len(commands))
        if TOUR_FOLDER.fullmatch(folder):
            folders.append(Path(folder))
        return found, folder

    try:
        yield run
    finally:
        for shell in started:
            kill_group(shell.pid)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Run]:
    with bash_session(tmp_path) as run:
        yield run


def kill_group(group: int) -> None:
    """Stop every process of the session (a server the file left running too)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def documents() -> list[Path]:
    """README.md and every page under docs/ that has a ```console block."""
    pages = sorted(DOCS.glob("**/*.md"))
    return [README, *(page for page in pages if any(console_blocks(page.read_text("utf-8"))))]


def shown_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("document", documents(), ids=shown_name)
def test_examples_give_the_output_they_show(document: Path, session: Run, tmp_path: Path) -> None:
    name = shown_name(document)
    found = examples(document.read_text(encoding="utf-8"), name)
    assert found, f"{name} has no ```console examples"
    ports = free_ports()
    actual, folder = session([with_ports(example.command, ports) for example in found])
    assert TOUR_FOLDER.fullmatch(folder), (
        f"{name}'s session ended in {folder}, not in a temporary folder of its own "
        '(start the page with `cd "$(mktemp -d)"`)'
    )
    assert not (tmp_path / "scratch.db").exists(), (
        f"a command of {name} used a database before the file chose its scratch database"
    )
    normal_expected, normal_actual = normaliser(), normaliser()
    failures = []
    for example, output in zip(found, actual, strict=True):
        shown = normal_expected(example.expected)
        got = normal_actual(shown_ports(output, ports))
        if shown != got:
            failures.append(
                f"{name}:{example.line}: $ {example.command}\n"
                f"--- {name} shows:\n{shown}\n--- the command printed:\n{got}\n"
            )
    assert not failures, (
        f"{len(failures)} of {len(found)} commands of {name} print something else "
        "(the first one is the one to fix; later ones may only follow from it):\n\n"
        + "\n".join(failures[:3])
    )


def test_the_documentation_keeps_its_runnable_examples() -> None:
    counts = {
        shown_name(path): len(examples(path.read_text("utf-8"), shown_name(path)))
        for path in documents()
    }
    assert counts["README.md"] >= 3, "README.md has lost its tour"
    assert sum(counts.values()) > 150, f"the docs have lost their ```console examples: {counts}"


def test_console_blocks_are_parsed_as_a_shell_reads_them() -> None:
    text = "\n".join(
        [
            "```console",
            "$ echo 'a",
            "  b' \\",
            "    | cat",
            "a",
            "  b",
            "$ true",
            "```",
            "```sh",
            "$ not run",
            "```",
        ]
    )
    assert examples(text) == [
        Example(2, "echo 'a\n  b' \\\n    | cat", "a\n  b"),
        Example(7, "true", ""),
    ]


def test_a_value_broken_across_lines_keeps_its_break_and_its_identity() -> None:
    normal = normaliser()
    one = "0abe3a20-3e2a-4906-9349-e6d02c5634e2"
    two = "dd9008f6-aad9-4992-b22e-23347d81fa86"
    text = f'["{one[:30]}\n{one[30:]}", "{two}", "{one}"]'
    assert normal(text) == (
        '["<0>###########################\n######", "<1>#################################", '
        '"<0>#################################"]'
    )
    assert normal("known 2026-01-01T00:00:00.000000Z") == "known 2026-01-01T00:00:00.000000Z"


def shown_default(value: object) -> str:
    """A setting's default as the configuration table (docs/operations.md) writes it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if value != "" else "empty"


def test_configuration_table_names_every_setting_with_its_default() -> None:
    from api.app.settings import Settings

    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `(SANCTIONS_[A-Z_]+)` \| `?([^|`]*?)`? \|", section, re.M)
    settings = {
        f"SANCTIONS_{name.upper()}": shown_default(field.default)
        for name, field in Settings.model_fields.items()
    }
    assert dict(rows) == settings
