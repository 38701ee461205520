"""`edgeport build`: every field is a flag, config file + flag override, clean errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeport.build import BuildConfig
from edgeport.cli import main, make_parser

ROOT = Path(__file__).resolve().parents[2]


def test_every_config_field_has_a_flag():
    parser = make_parser()
    build = parser._subparsers._group_actions[0].choices["build"]
    flags = {opt for a in build._actions for opt in a.option_strings}
    for f in dataclasses.fields(BuildConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name
    assert "--config" in flags and "--no-augment" in flags


def test_importing_the_cli_does_not_import_tensorflow():
    code = "import sys, edgeport.build.cli, edgeport.build; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.strip() == "False"


def test_config_file_with_flag_override_trains(tmp_path, class_folders, capsys):
    pytest.importorskip("tensorflow", reason="training needs TensorFlow")
    cfg = tmp_path / "build.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": str(class_folders), "out": str(tmp_path / "from-file"), "backbone": "tiny", "weights": "none",
        "head": "conv", "image-size": 32, "epochs": 3, "fine-tune-epochs": 1, "batch-size": 16, "progress": "off",
    }))
    out = tmp_path / "run"
    rc = main(["build", "--config", str(cfg), "--out", str(out), "--epochs", "1", "--no-augment",
               "--head", "gap"])
    assert rc == 0
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["epochs"] == 1 and stored["head"] == "gap" and stored["augment"] is False
    assert stored["image_size"] == 32 and stored["fine_tune_lr"] == stored["lr"] / 10  # resolved
    assert not (tmp_path / "from-file").exists()
    assert "val top-1" in capsys.readouterr().out
    assert len(json.loads((out / "checkpoints" / "state.json").read_text())["history"]) == 2


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    rc = main(["build", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), "--backbone", "tiny",
               "--weights", "none"])  # (the weights check comes first: tiny has no ImageNet weights)
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgeport build: error: expected a data folder")
