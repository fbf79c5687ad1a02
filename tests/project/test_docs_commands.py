"""Every command shown in README.md and docs/*.md exists and parses.

Commands are read from ```bash/sh/shell/console blocks (every line, `\\` continuations joined,
`&&`, `|`, `;`, `&` split, `$(…)` checked on its own) and from `inline code` that starts with
a command. Each one is checked without running anything heavy:

- ``make TARGET… [VAR=value…]``: every target is listed by ``make help``, every variable is
  one the Makefile or cloud.mk assigns or reads, and each ``SET="name=value …"`` names a
  pipeline parameter;
- ``yoda-…`` console scripts: parsed by their own CLI (``build_parser()``, else ``main``
  stopped right after it parsed), with abbreviated flags refused, so a flag must be spelt out
  exactly; each ``--set name=value`` names a pipeline parameter;
- ``uv run [--frozen] X`` is checked as ``X``;
- any other program must be in :data:`OTHER_PROGRAMS` (and a ``python``/``pytest`` path must
  exist).

Leading ``NAME=value`` environment assignments are skipped. Inline code is a command when its
first word is a program above or a near miss of one (``gclod``, ``yoda-predcit``: a typo, then
refused); one known word alone (``make``, ``yoda-serve``) is a name, not a command. In a shell
block every command counts, whatever its first word.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import importlib
import importlib.metadata
import io
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from unittest import mock

import pytest

from yoda_pipeline.cli import split_sets

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
MAKEFILES = [ROOT / "Makefile", ROOT / "cloud.mk"]

#: Programs the docs may name besides make, uv and the project's console scripts.
OTHER_PROGRAMS = frozenset(
    {
        "apt-get",
        "curl",
        "docker",
        "gcloud",
        "git",
        "hadolint",
        "ls",
        "mypy",
        "pytest",
        "python",
        "ruff",
        "tail",
        "tensorboard",
    }
)
#: `uv` subcommands other than `run` that the docs may show.
UV_SUBCOMMANDS = frozenset({"sync", "lock", "export"})
#: The generic forms a doc may show in place of a real `--set`/`SET=` item.
SET_PLACEHOLDERS = frozenset({"name=value", "NAME=VALUE", "…", "..."})
SEPARATORS = frozenset({";", "&", "&&", "|", "||"})
REDIRECTS = frozenset({">", ">>", "<", ">&", "&>"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`")


class DocCommandError(AssertionError):
    """A documented command that does not exist or does not parse."""


def fail(message: str) -> NoReturn:
    raise DocCommandError(message)


# ---- what exists ------------------------------------------------------------------------------


@functools.cache
def make_targets() -> frozenset[str]:
    """The targets ``make help`` lists (before its variables)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    listed = result.stdout.partition("\nVariables")[0]
    targets = frozenset(re.findall(r"^  (\S+)", listed, re.MULTILINE))
    assert {"help", "run-local", "test"} <= targets, result.stdout
    return targets


@functools.cache
def make_variables() -> frozenset[str]:
    """Variables the Makefile or cloud.mk assigns (``X ?=``, ``X =``, ``X :=``) or reads."""
    names: set[str] = set()
    for makefile in MAKEFILES:
        text = makefile.read_text()
        names.update(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?|:|::|\+)?=", text, re.M))
        names.update(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text))
    return frozenset(names)


@functools.cache
def pipeline_parameters() -> frozenset[str]:
    """The names ``--set name=`` and ``SET="name=…"`` accept."""
    from yoda_pipeline.parameters import ROWS

    return frozenset(ROWS)


@functools.cache
def console_scripts() -> dict[str, importlib.metadata.EntryPoint]:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    return {ep.name: ep for ep in scripts if ep.name.startswith("yoda-")}


# ---- the checks -----------------------------------------------------------------------------


def check_set_item(item: str, where: str) -> None:
    if item in SET_PLACEHOLDERS:
        return
    name, sep, _ = item.partition("=")
    if not sep:
        fail(f"{where} {item!r}: expected NAME=VALUE")
    if name not in pipeline_parameters():
        fail(f"{where} {item!r}: {name!r} is not a pipeline parameter")


def check_make(args: list[str]) -> None:
    for arg in args:
        if arg.startswith("-"):
            fail(f"make flag {arg!r}: the docs show targets and VAR=value only")
        name, sep, value = arg.partition("=")
        if sep:
            if name not in make_variables():
                fail(f"make variable {name!r} is neither set nor read by the Makefile/cloud.mk")
            if name == "SET":
                for item in split_sets(value):
                    check_set_item(item, "SET")
        elif arg not in make_targets():
            fail(f"make target {arg!r} is not in `make help`")


def _strict(parser: argparse.ArgumentParser) -> None:
    """No abbreviated long flags, in the parser and its subcommands: a doc spells a flag out."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _strict(sub)


class _ParsedError(BaseException):
    """Raised by the patched ``parse_args`` once a ``main`` without ``build_parser`` parsed
    (a BaseException, so that no ``except Exception`` in a ``main`` swallows it)."""


def _parse(parse: Callable[[], object], script: str, args: list[str]) -> None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            parse()
    except SystemExit as exit_:
        if exit_.code not in (0, None):  # 0: --help
            last = err.getvalue().strip().splitlines()[-1:] or ["(no message)"]
            fail(f"{script} {shlex.join(args)}: {last[0]}")


def check_console_script(script: str, args: list[str]) -> None:
    entry = console_scripts().get(script)
    if entry is None:
        fail(f"{script!r} is not a console script of this project")
    module = importlib.import_module(entry.module)
    build = getattr(module, "build_parser", None)
    if build is not None:
        parser = build()
        _strict(parser)
        _parse(lambda: parser.parse_args(args), script, args)
    else:
        # main() builds its parser inline: stop it right after a successful parse.
        original = argparse.ArgumentParser.parse_args

        def parse_then_stop(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> NoReturn:
            _strict(self)
            original(self, *a, **kw)
            raise _ParsedError

        main = getattr(module, entry.attr)
        with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop):
            try:
                _parse(lambda: main(args), script, args)
            except _ParsedError:
                pass
            else:
                fail(f"{script}: main() returned without parsing its flags")
    for index, arg in enumerate(args):
        if arg == "--set" and index + 1 < len(args):
            check_set_item(args[index + 1], "--set")
        elif arg.startswith("--set="):
            check_set_item(arg.removeprefix("--set="), "--set")


def check_other(program: str, args: list[str]) -> None:
    if program not in OTHER_PROGRAMS:
        fail(f"program {program!r} is not in the docs' allow-list")
    if program in ("python", "pytest"):
        for arg in args:
            path = arg.split("::")[0]
            is_path = path.endswith(".py") or path.startswith("tests/")
            if is_path and not arg.startswith("-") and not (ROOT / path).exists():
                fail(f"{program} {arg!r}: no such file")


def strip_environment(words: list[str]) -> list[str]:
    index = 0
    while index < len(words) and ASSIGNMENT.match(words[index]):
        index += 1
    return words[index:]


def check_command(words: list[str]) -> None:
    """One simple command, its environment assignments already stripped."""
    program, args = words[0], words[1:]
    if program == "make":
        check_make(args)
    elif program == "uv":
        if not args:
            fail("uv without a subcommand")
        if args[0] != "run":
            if args[0] not in UV_SUBCOMMANDS:
                fail(f"uv {args[0]!r}: not a uv subcommand the docs may show")
            return
        rest = args[1:]
        while rest and rest[0].startswith("-"):
            if rest[0] != "--frozen":
                fail(f"uv run option {rest[0]!r}: only --frozen is expected")
            rest = rest[1:]
        if not rest:
            fail("uv run without a command")
        check_command(rest)
    elif program.startswith("yoda-"):
        check_console_script(program, args)
    else:
        check_other(program, args)


# ---- reading the docs -----------------------------------------------------------------------


def split_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, ``$(…)`` substitutions included on their own."""
    inner = [cmd for sub in SUBSTITUTION.findall(line) for cmd in split_commands(sub)]
    lexer = shlex.shlex(
        SUBSTITUTION.sub("SUBSTITUTED", line), posix=True, punctuation_chars=";&|<>"
    )
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    tokens = iter(lexer)
    for token in tokens:
        if token in SEPARATORS:
            commands.append([])
        elif token in REDIRECTS:
            next(tokens, None)
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()
        else:
            commands[-1].append(token)
    return [words for words in commands if words] + inner


@dataclass(frozen=True)
class Shown:
    """A command as a doc shows it."""

    where: str  # file:line
    text: str
    words: tuple[str, ...]
    fenced: bool

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.words)}"


def known_programs() -> set[str]:
    return {"make", "uv", *OTHER_PROGRAMS, *console_scripts()}


def near_miss(word: str, names: Iterable[str]) -> bool:
    return bool(difflib.get_close_matches(word, list(names), n=1, cutoff=0.85))


def is_command(words: list[str]) -> bool:
    """Whether inline code is a command: its first word a program the docs may name, or a near
    miss of one (`gclod`, `yoda-predcit`: a typo, which the test then reports)."""
    program = words[0]
    if program.startswith("yoda-"):
        return near_miss(program, console_scripts())
    others = {"make", "uv", *OTHER_PROGRAMS}
    return program in others or (
        re.fullmatch(r"[a-z][a-z-]*", program) is not None and near_miss(program, others)
    )


def shown_in(path: Path) -> Iterator[Shown]:
    text = path.read_text()
    name = path.relative_to(ROOT).as_posix()

    def line_of(offset: int, within: str = text) -> int:
        return within.count("\n", 0, offset) + 1

    for block in FENCE.finditer(text):
        if block.group(1) not in SHELL_LANGUAGES:
            continue
        first = line_of(block.start(2))
        logical, start = "", first
        for number, raw in enumerate(block.group(2).splitlines(), first):
            if not logical:
                start = number
            if raw.rstrip().endswith("\\"):
                logical += raw.rstrip()[:-1] + " "
                continue
            logical += raw
            for words in split_commands(logical):
                words = strip_environment(words)
                if words:
                    yield Shown(f"{name}:{start}", logical.strip(), tuple(words), fenced=True)
            logical = ""
        assert not logical, f"{name}:{start}: a `\\` continuation runs off the block"

    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in INLINE.finditer(prose):
        code = span.group(1)
        if "\n\n" in code:
            continue
        try:
            commands = split_commands(code.replace("\n", " "))
        except ValueError:  # an unbalanced quote: prose, not a command
            continue
        for words in commands:
            words = strip_environment(words)
            if not words or not is_command(words):
                continue
            if len(words) == 1 and words[0] in known_programs():
                continue  # a name (`make`, `yoda-serve`), not a command
            where = f"{name}:{line_of(span.start(), prose)}"
            yield Shown(where, code.replace("\n", " "), tuple(words), fenced=False)


SHOWN = [shown for doc in DOCS for shown in shown_in(doc)]


# ---- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_documented_command(shown: Shown) -> None:
    try:
        check_command(list(shown.words))
    except DocCommandError as error:
        pytest.fail(f"{shown.where}: `{shown.text}`: {error}", pytrace=False)


def test_the_docs_show_every_kind_of_command() -> None:
    """The extractor finds what the docs show (an extractor that finds nothing passes nothing)."""
    programs = {
        next(w for w in shown.words if w not in ("uv", "run", "--frozen")) for shown in SHOWN
    }
    scripts = {"yoda-pipeline", "yoda-data-transformation", "yoda-predict", "yoda-serve"}
    assert {"make", "gcloud", "curl", "pytest", *scripts} <= programs, programs
    assert sum(shown.fenced for shown in SHOWN) >= 30
    assert sum(not shown.fenced for shown in SHOWN) >= 30
    targets = {shown.words[1] for shown in SHOWN if shown.words[0] == "make" and shown.words[1:]}
    assert {"run-local", "test", "submit", "build-images", "deploy", "test-docker"} <= targets


def test_the_readme_is_the_front_door() -> None:
    """Short (the flow, the guides, the status), with the first commands on the first screen,
    and links that lead somewhere."""
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 200, len(lines)
    first_screen = "\n".join(lines[:40])
    assert "```bash\nmake run-local" in first_screen
    assert "make test" in first_screen
    for doc in DOCS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", doc.read_text()):
            if "://" in target:
                continue
            linked = (doc.parent / target) if target else doc
            assert linked.exists(), f"{doc.name}: broken link {target}"
            if anchor:
                assert anchor in anchors(linked), f"{doc.name}: no heading #{anchor} in {target}"


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    prose = FENCE.sub("", doc.read_text())
    headings = re.findall(r"^#+\s+(.+?)\s*$", prose, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("make run-locl", "make target 'run-locl'"),
        ("make run-local RAW_DAT=x.csv", "make variable 'RAW_DAT'"),
        ('make run-local SET="lora_rr=16"', "'lora_rr' is not a pipeline parameter"),
        ("make submit SET=lora_r", "expected NAME=VALUE"),
        ("uv run yoda-pipeline run-local --raw-data-ur x.csv", "unrecognized arguments"),
        ("uv run yoda-pipeline run-local --set lora_rr=16", "'lora_rr' is not a pipeline"),
        ("uv run yoda-pipeline compil", "invalid choice"),
        ("uv run yoda-serve --quantisation auto", "unrecognized arguments"),
        ("uv run yoda-predict", "required"),
        ("uv run yoda-make-tiny-model --sed 1", "unrecognized arguments"),
        ("uv run yoda-predicts m x", "not a console script"),
        ("uv run --locked pytest", "only --frozen"),
        ("uv run pytest tests/test_no_such_file.py", "no such file"),
        ("mkae test", "not in the docs' allow-list"),
        ("gclod storage ls", "not in the docs' allow-list"),
    ],
)
def test_a_typo_fails(command: str, reason: str) -> None:
    (words,) = split_commands(command)
    with pytest.raises(DocCommandError, match=re.escape(reason)):
        check_command(strip_environment(words))


def test_shell_lines_split_into_commands() -> None:
    line = (
        "A=$(ls -d x | tail -1) B=1 uv run yoda-serve --quantization auto & curl -s -d '{\"a\": 1}'"
    )
    assert split_commands(line) == [
        ["A=SUBSTITUTED", "B=1", "uv", "run", "yoda-serve", "--quantization", "auto"],
        ["curl", "-s", "-d", '{"a": 1}'],
        ["ls", "-d", "x"],
        ["tail", "-1"],
    ]
    assert split_commands("make deploy  # costs: 0.62 USD/hour") == [["make", "deploy"]]


@pytest.mark.parametrize(
    ("code", "command"),
    [
        ("make run-local", True),
        ("gcloud ai models delete-version", True),
        ("gclod ai models delete-version", True),  # a typo: checked, and refused
        ("yoda-predcit x", True),
        ("yoda-phi3", False),  # a model name
        ("yoda-checkpoints-<hash of the model path>", False),
        ("pipeline", False),
        ("uv.lock", False),
        ("docker.io", False),
    ],
)
def test_which_inline_code_is_a_command(code: str, command: bool) -> None:
    assert is_command(code.split()) is command
