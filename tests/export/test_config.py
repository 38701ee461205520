import pytest

from edgeport.config import load_config
from edgeport.errors import ConfigError
from edgeport.export.config import ALL_SCHEMES, ExportConfig, parse_schemes


def test_parse_schemes_orders_and_validates():
    assert parse_schemes("all") == ALL_SCHEMES
    assert parse_schemes("onnx-int8, fp32") == ("fp32", "onnx-int8")
    with pytest.raises(ConfigError, match="unknown export scheme\\(s\\) 'int4'; expected a comma-separated list of: fp32"):
        parse_schemes("fp32,int4")


def test_defaults(tmp_path):
    cfg = ExportConfig(run_dir=str(tmp_path))
    assert cfg.out_dir == tmp_path / "export"
    assert cfg.scheme_list == ALL_SCHEMES
    # every validation image verifies (a slow scheme for at most verify_seconds), decided at 95 %
    assert (cfg.io_dtype, cfg.calibration_samples, cfg.verify_samples) == ("uint8", 200, None)
    assert cfg.search and (cfg.max_drop, cfg.min_agreement, cfg.min_decided_agreement) == (None, None, None)
    assert (cfg.verify_seconds, cfg.confidence, cfg.undecided) == (60.0, 0.95, "pass")


@pytest.mark.parametrize("bad", [{"io_dtype": "int4"}, {"opset": 9}, {"calibration_samples": 0},
                                 {"max_drop": -1.0}, {"schemes": "int4"}, {"confidence": 1.2},
                                 {"undecided": "maybe"}, {"verify_seconds": 0}])
def test_bad_values_are_config_errors(tmp_path, bad):
    with pytest.raises(ConfigError, match="expected|unknown"):
        ExportConfig(run_dir=str(tmp_path), **bad)


def test_config_file_then_flags(tmp_path):
    f = tmp_path / "export.yaml"
    f.write_text("schemes: [int8, fp32]\nverify-samples: 50\nmax_drop: 2\n")
    cfg = load_config(ExportConfig, f, {"run_dir": "r", "verify_samples": 10, "seed": None})
    assert cfg.schemes == ("fp32", "int8") and cfg.verify_samples == 10 and cfg.max_drop == 2
