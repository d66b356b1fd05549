"""The README's Python examples run as written, and its commands name real subcommands."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run():
    blocks = python_blocks()
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_setup_commands_use_the_real_cli():
    from bridge.cli.main import build_parser

    text = README.read_text()
    assert ".venv/bin/python -m pytest -q" in text  # the command .ci/run runs
    line = next(x for x in text.splitlines() if "wavestack generate" in x and "venv" in x)
    assert line.startswith("bash scripts/setup && ")  # the set-up CI runs too (.ci/run)
    argv = line.split(".venv/bin/wavestack ", 1)[1].split()
    args = build_parser().parse_args(argv)
    assert args.command == "generate" and args.model == "default"
