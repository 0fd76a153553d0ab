"""The README's commands are real: every ``panoflow ...`` line in its code blocks parses with panoflow's own
argument parser (no ``--help``: the whole line is checked, flags and values included)."""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from pathlib import Path

import pytest

from panoflow.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _code_blocks(text: str) -> list[list[str]]:
    """The lines of every fenced block that is not Python (shell examples)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = [] if line.strip() == "```" else None
                if current is None:  # a ```python (or other language) block: skip to its end
                    blocks.append([])
                    current = ["<skip>"]
            else:
                if current[:1] != ["<skip>"]:
                    blocks.append(current)
                current = None
            continue
        if current is not None:
            current.append(line)
    return [b for b in blocks if b]


def _commands(lines: list[str]) -> list[str]:
    """Join continuation lines, drop comments, split ``a && b``; keep the ``panoflow`` commands."""
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    out = []
    for line in joined:
        for part in re.split(r"\s*(?:&&|;)\s*", line):
            words = shlex.split(part, comments=True)
            # the shell's redirections and pipes are not arguments: ``... > ca.pem``, ``... | jq``
            cut = next(
                (i for i, w in enumerate(words) if w in ("|", "<", "2>&1") or w.startswith((">", "2>"))),
                len(words),
            )
            words = words[:cut]
            if words and Path(words[0]).name == "panoflow":
                out.append(shlex.join(words[1:]))
    return out


def _variants(command: str) -> list[list[str]]:
    """``[--tail 100]`` is optional and ``pause|resume`` are alternatives: every combination must parse."""
    words = shlex.split(command)
    # optional groups: "[--node" ... "code_node]"
    groups: list[tuple[int, int]] = []
    start = None
    for i, w in enumerate(words):
        if w.startswith("[") and start is None:
            start = i
        if start is not None and w.endswith("]"):
            groups.append((start, i))
            start = None
    cases: list[list[str]] = []
    for keep in itertools.product((True, False), repeat=len(groups)):
        drop = {j for (a, b), k in zip(groups, keep) if not k for j in range(a, b + 1)}
        kept = [w.strip("[]") if any(a <= i <= b for a, b in groups) else w
                for i, w in enumerate(words) if i not in drop]
        alternatives = [w.split("|") if "|" in w and not w.startswith(("-", "'", '"')) and "://" not in w
                        else [w] for w in kept]
        cases.extend(list(c) for c in itertools.product(*alternatives))
    return cases


def _readme_commands() -> list[str]:
    return [c for block in _code_blocks(README.read_text()) for c in _commands(block)]


def test_the_readme_has_panoflow_commands() -> None:
    commands = _readme_commands()
    assert len(commands) >= 15, commands
    assert any(c.startswith("package-application") for c in commands)


def test_the_extractor_handles_continuations_options_and_alternatives() -> None:
    lines = ["panoflow logs people [--node code_node] [-f]   # comment", "panoflow a \\", "    --b c && cd x",
             "aws panorama list-devices", "panoflow signal x cam pause|resume", "panoflow ca > ca.pem",
             "panoflow ps | head 2>/dev/null"]
    commands = _commands(lines)
    assert commands == ["logs people '[--node' 'code_node]' '[-f]'", "a --b c", "signal x cam 'pause|resume'",
                        "ca", "ps"]
    assert _variants(commands[0]) == [["logs", "people", "--node", "code_node", "-f"],
                                      ["logs", "people", "--node", "code_node"], ["logs", "people", "-f"],
                                      ["logs", "people"]]
    assert _variants(commands[2]) == [["signal", "x", "cam", "pause"], ["signal", "x", "cam", "resume"]]


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_command_parses(command: str) -> None:
    parser = build_parser()
    for argv in _variants(command):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args = parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"README.md: `panoflow {shlex.join(argv)}` is refused (exit {exc.code}): "
                        f"{err.getvalue().strip()}")
        assert callable(args.handler), argv
