"""The command line as one tool: every subcommand's parser walked, flags with one meaning each,
--config on every stage command, -q/-v after the command, no abbreviations, pipeline options
generated from the stage configs."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
import yaml

from edgeport.cli import main, make_parser
from edgeport.errors import ConfigError
from edgeport.flags import SHARED, thread_counts

STAGE_COMMANDS = ("build", "export", "run", "bench", "check", "pipeline", "demo")
#: what a flag's help must end with: its default, in one style
DEFAULT_STYLE = re.compile(r"\(default: [^()]*(\([^()]*\)[^()]*)*\)$")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = make_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and not isinstance(a, (argparse._HelpAction,
                                                                              argparse._VersionAction))]


def meaning(help_text: str) -> str:
    """A help's first clause: what the flag is, before what it does in one command and its default."""
    return help_text.split(" (default:")[0].split("; ")[0]


def test_every_command_is_walked():
    assert set(subcommands()) == {"build", "export", "run", "doctor", "bench", "check", "demo", "pipeline", "serve",
                                  "service"}


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_flag_has_help_with_its_default_and_no_abbreviations(name):
    p = subcommands()[name]
    assert p.allow_abbrev is False
    p.format_help()  # renders (a stray % in a help text would raise here)
    for action in options(p):
        assert action.help, f"{name} {action.option_strings} has no help"
        assert DEFAULT_STYLE.search(action.help.replace("%%", "%")), \
            f"{name} {action.option_strings}: help does not end with '(default: X)': {action.help!r}"
        assert "(default " not in action.help  # the old style, without a colon


def test_shared_flag_names_have_one_type_and_one_meaning():
    seen: dict[str, list[tuple[str, argparse.Action]]] = {}
    for name, p in subcommands().items():
        for action in options(p):
            for flag in action.option_strings:
                seen.setdefault(flag, []).append((name, action))
    shared = {flag: uses for flag, uses in seen.items() if len(uses) > 1}
    assert {"--threads", "--schemes", "--config", "--engines", "--out", "--data", "--seed", "--progress",
            "--max-drop", "--json", "-q", "-v"} <= set(shared)
    for flag, uses in shared.items():
        first_cmd, first = uses[0]
        for cmd, action in uses[1:]:
            where = f"{flag} in {first_cmd} and {cmd}"
            assert type(action) is type(first), where
            assert action.type is first.type, where
            assert action.choices == first.choices, where
            assert action.nargs == first.nargs, where
            assert meaning(action.help) == meaning(first.help), where
    for key, flag in SHARED.items():  # the table's names are the ones that are shared
        assert "--" + key.replace("_", "-") in shared, key
    assert all(a.type is thread_counts for _, a in shared["--threads"])
    assert {a.choices for _, a in shared["--progress"]} == {("auto", "bar", "line", "off")}


@pytest.mark.parametrize("name", STAGE_COMMANDS)
def test_config_and_progress_on_every_stage_command(name):
    flags = {f for a in options(subcommands()[name]) for f in a.option_strings}
    assert "--config" in flags
    if name != "run":  # run's output is per frame, not progress
        assert "--progress" in flags


def test_thread_counts_parser():
    assert thread_counts("1,2, 4") == (1, 2, 4) and thread_counts("3") == (3,)
    for bad in ("0", "1,x", "", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            thread_counts(bad)


@pytest.mark.parametrize("argv", [["-q", "doctor"], ["doctor", "-q"], ["doctor", "--quiet"]])
def test_quiet_and_verbose_before_and_after_the_command(argv):
    args = make_parser().parse_args(argv)
    assert args.quiet is True and args.verbose is False
    args = make_parser().parse_args(["export", "RUN", "-v"])
    assert args.verbose is True and args.quiet is False


def test_no_abbreviations_and_did_you_mean(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "RUN", "--scheme", "int8"])  # was silently --schemes
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "unrecognized arguments: --scheme int8" in err and "did you mean --schemes?" in err
    assert err.startswith("usage: edgeport export")
    with pytest.raises(SystemExit):
        main(["bench", "EXPORT", "--thread", "2"])
    assert "did you mean --threads?" in capsys.readouterr().err


@pytest.mark.parametrize("argv, command", [
    (["run", "missing.tflite", "--threads", "1,2"], "run"),
    (["check", "missing-export", "--threads", "2,4"], "check"),
    (["export", "missing-run", "--threads", "1,2"], "export"),
])
def test_one_value_commands_say_so_when_given_several(argv, command, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"edgeport {command}: error: expected one value for --threads in `edgeport {command}`, "
                          "received ")


@pytest.mark.parametrize("argv, text, message", [
    (["export", "RUN"], "opset: 5\n", "expected --opset between 13 and 21"),
    (["run", "model.tflite"], "top_k: 0\n", "expected --top-k >= 1"),
    (["run", "model.tflite"], "threads: [1, 2]\n", "expected 'threads' in .* to be an integer or null"),
    (["bench", "EXPORT"], "runs: 0\n", "expected --runs >= 1"),
    (["check", "EXPORT"], "tolerance-pts: -1\n", "expected tolerances >= 0"),
    (["pipeline", "--data", "d", "--out", "o"], "video_images: 0\n", "expected --video-images and"),
    (["demo", "--out", "o"], "per-class: 2\n", "expected --per-class >= 4"),
    (["demo"], "mixed_precision: maybe\n", "expected --mixed-precision one of"),
    (["pipeline", "--data", "d", "--out", "o"], "epoch: 3\n", r"unknown key\(s\) epoch in .*; expected keys: "),
])
def test_every_stage_command_reads_its_config_file(tmp_path, capsys, argv, text, message):
    """A bad value in the file is refused before anything runs: proof that the file is read."""
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert main([*argv, "--config", str(f)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_run_config_file_then_flags(tmp_path):
    from edgeport.runtime.cli import loop_config

    f = tmp_path / "run.yaml"
    f.write_text(yaml.safe_dump({"source": "video.mp4", "top-k": 2, "threads": 3, "headless": True,
                                 "json_summary": "s.json"}))
    args = make_parser().parse_args(["run", "m.tflite", "--config", str(f), "--top-k", "4", "--no-headless"])
    cfg = loop_config(args)
    assert (cfg.model, cfg.source, cfg.top_k, cfg.threads, cfg.headless, cfg.json_summary) == \
        ("m.tflite", "video.mp4", 4, 3, False, "s.json")
    cfg = loop_config(make_parser().parse_args(["run", "m.tflite", "--threads", "2"]))
    assert cfg.threads == 2 and cfg.source == "0" and cfg.show is False


def test_pipeline_takes_every_stage_option():
    from edgeport.benchmarks.config import BenchConfig
    from edgeport.build.config import BuildConfig
    from edgeport.export.config import ExportConfig
    from edgeport.pipeline import _NOT_STAGE_OPTIONS, PipelineConfig

    own = {f.name for f in dataclasses.fields(PipelineConfig)}
    for command in ("pipeline", "demo"):
        flags = {f for a in options(subcommands()[command]) for f in a.option_strings}
        for cls in (BuildConfig, ExportConfig, BenchConfig, PipelineConfig):
            for f in dataclasses.fields(cls):
                if f.name in _NOT_STAGE_OPTIONS or f.name in ("replace", "stage_options"):
                    continue
                assert "--" + f.name.replace("_", "-") in flags, (command, cls.__name__, f.name)
        assert {"--mixed-precision", "--resize", "--io-dtype", "--max-drop", "--engines"} <= flags
    assert {"bench_runs", "bench_limit"} <= own  # bench's --runs/--limit are these in a pipeline


def test_pipeline_splits_stage_options(tmp_path):
    from edgeport.pipeline import DEMO_DEFAULTS, pipeline_config

    args = make_parser().parse_args([
        "pipeline", "--data", "d", "--out", "o", "--mixed-precision", "off", "--io-dtype", "int8",
        "--max-drop", "2", "--engines", "all", "--progress", "line", "--threads", "1,2", "--resize", "bilinear"])
    cfg = pipeline_config(args)
    assert cfg.threads == (1, 2) and cfg.replace is False
    assert cfg.stage_options == {
        "build": {"mixed_precision": "off", "progress": "line", "resize": "bilinear"},
        "export": {"io_dtype": "int8", "max_drop": 2.0, "progress": "line"},
        "bench": {"engines": "all", "progress": "line"},
    }
    # demo: dataclass defaults < the demo's < file < flags; -q turns progress off everywhere
    f = tmp_path / "demo.yaml"
    f.write_text("epochs: 3\nio-dtype: float32\nhead: conv\n")
    cfg = pipeline_config(make_parser().parse_args(["-q", "demo", "--config", str(f), "--head", "gap"]))
    assert cfg.epochs == 3 and cfg.head == "gap" and cfg.backbone == DEMO_DEFAULTS["backbone"]
    assert cfg.out == "demo-out" and cfg.replace is True and cfg.data is None
    assert cfg.stage_options["export"] == {"io_dtype": "float32", "progress": "off"}
    with pytest.raises(ConfigError, match="expected --data"):
        pipeline_config(make_parser().parse_args(["pipeline", "--out", "o"]))
    args = make_parser().parse_args(["pipeline", "--data", "d", "--out", "o"])
    args.timeout = "soon"  # a stage option is checked against its stage's type
    with pytest.raises(ConfigError, match="expected 'timeout' in flags to be a number"):
        pipeline_config(args)


def documented_commands() -> list[tuple[str, str]]:
    """Every `edgeport ...` command line in README.md and docs/*.md code blocks: (file, line)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        block, lines = False, path.read_text().splitlines()
        joined: list[str] = []
        for line in lines:
            if line.startswith("```"):
                block = not block
                continue
            if block and joined and joined[-1].endswith("\\"):
                joined[-1] = joined[-1][:-1] + " " + line.strip()
            elif block:
                joined.append(line)
        for line in joined:
            for code in re.split(r"\s(?:&&|;|\|\|)\s", line.split("  #")[0].split(" # ")[0]):
                code = code.strip()
                if code.startswith("edgeport ") and "..." not in code:
                    found.append((path.name, code))
    return found


@pytest.mark.parametrize("where, line", documented_commands(), ids=lambda v: v if len(v) < 40 else v[:40])
def test_documented_commands_parse(where, line):
    """Every command the README and the guides show is accepted by today's parser (flags, types, choices)."""
    import shlex

    args = make_parser().parse_args(shlex.split(line)[1:])
    assert getattr(args, "func", None), (where, line)


def test_the_documented_commands_are_found():
    lines = [line for _, line in documented_commands()]
    assert len(lines) >= 15 and any("--show" in line for line in lines)
    assert any(line.startswith("edgeport run export/model.onnx --headless --source") for line in lines)  # joined
    assert not [line for line in lines if "&&" in line]  # a chain is checked command by command
