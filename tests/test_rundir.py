import pytest

from edgeport.errors import ConfigError, DataError, ModelError
from edgeport.files import sha256_file
from edgeport.rundir import read_run


def _run(tmp_path, config="image_size: 24\nbackbone: tiny\nresize: bilinear\n"):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"zip")
    (run / "labels.txt").write_text("a\nb\n")
    (run / "config.yaml").write_text(config)
    return run


def test_reads_labels_contract_and_hash(tmp_path):
    run = read_run(_run(tmp_path))
    assert run.labels == ("a", "b")
    assert (run.contract.height, run.contract.width, run.contract.resize) == (24, 24, "bilinear")
    assert run.backbone == "tiny"
    assert run.source_sha256 == sha256_file(run.model_path) and len(run.source_sha256) == 64
    assert run.split is None and run.samples("val") == []


def test_missing_pieces_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="expected a run directory"):
        read_run(tmp_path / "nope")
    run = _run(tmp_path)
    (run / "model.keras").unlink()
    with pytest.raises(ModelError, match="model.keras"):
        read_run(run)
    (run / "model.keras").write_bytes(b"zip")
    (run / "labels.txt").write_text("only\n")
    with pytest.raises(DataError, match="at least 2 labels"):
        read_run(run)


def test_bad_resize_method(tmp_path):
    with pytest.raises(ConfigError, match="resize"):
        read_run(_run(tmp_path, "image_size: 8\nresize: lanczos\n"))


@pytest.mark.parametrize("size", ["big", -3, [0, 8], True, [8, 8, 8]])
def test_a_bad_image_size_in_config_is_a_clear_error(tmp_path, size):
    import yaml

    from edgeport.errors import ConfigError

    (tmp_path / "model.keras").write_bytes(b"x")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"image_size": size}))
    with pytest.raises(ConfigError, match="expected image_size in .*config.yaml to be a positive integer"):
        read_run(tmp_path)
