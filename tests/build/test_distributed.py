"""``edgeport build --num-processes N``: real worker processes on 127.0.0.1 (CPU, gloo), the tiny backbone.

Two workers must train exactly what one process trains on the same global batches (and hold the same
weights), the run must export and verify; a worker killed mid-epoch must stop the other with a clear
error within 60 s; a port in use, an unreachable coordinator, a worker that never arrives and one started
with other options are clear errors; every worker resumes a killed run (slow). Every process is started
in a session of its own and killed with it at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the build stage needs TensorFlow (the [train] extra)")
pytest.importorskip("jax", reason="--num-processes needs JAX (the [distributed] extra)")

from edgeport.build import BuildConfig
from edgeport.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--backbone", "tiny", "--weights", "none", "--head", "gap", "--image-size", "32", "--batch-size", "8",
        "--progress", "off", "--seed", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))


@contextmanager
def workers():
    """Start ``edgeport build`` processes (each in its own session); all are killed, with their children, at the end."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "edgeport", "build", *args], env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(p)
        return p

    try:
        yield start
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            try:
                os.killpg(p.pid, signal.SIGKILL)  # a worker child left behind (it should have died with its parent)
            except ProcessLookupError:
                pass
            p.communicate(timeout=30)


def _weights(run: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run / "model.keras", compile=False).get_weights()


def test_two_processes_train_what_one_process_trains_and_export(tmp_path, class_folders):
    port = free_port()
    # no augmentation: each worker draws its own random augmentation (the killed-worker test has it)
    common = ["--data", str(class_folders), *TINY, "--no-augment", "--epochs", "1", "--fine-tune-epochs", "1"]
    two, one = tmp_path / "two", tmp_path / "one"
    with workers() as start:
        procs = [start(*common, "--out", str(two), "--num-processes", "2", "--process-id", str(i),
                       "--coordinator", f"127.0.0.1:{port}") for i in (0, 1)]
        procs.append(start(*common, "--out", str(one), "--num-processes", "1"))
        outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "run: " in outs[0][0] and "worker 1 of 2" in outs[1][0]
    assert not (tmp_path / "two" / ".worker-1").exists() and sorted(os.listdir(two)) == sorted(os.listdir(one))

    m2, m1 = (json.loads((r / "metrics.json").read_text()) for r in (two, one))
    rt = m2["runtime"]
    assert rt["processes"] == 2 and rt["replicas"] == 2 and rt["strategy"] == "DataParallel"
    digests = rt["weights_sha256_per_worker"]
    assert len(digests) == 2 and digests[0] == digests[1]  # each worker's own copy, hashed by itself
    # 30 training images, global batch 8: 3 steps an epoch (the incomplete fourth dropped), 2 epochs
    hist2, hist1 = (r / "history.csv" for r in (two, one))
    assert len(hist2.read_text().splitlines()) == 3
    for a, b in zip(_weights(two), _weights(one)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert m2["val"]["images"] == m1["val"]["images"] == 10
    assert m2["val_top1_pct"] == m1["val_top1_pct"]

    from edgeport.export import ExportConfig, export

    res = export(ExportConfig(run_dir=str(two), out=str(tmp_path / "export"), schemes=("fp32", "int8"),
                              calibration_samples=8, verify_samples=8, min_agreement=0.0, search=False,
                              progress=False))
    assert {a.scheme: a.status for a in res.artifacts} == {"fp32": "ok", "int8": "ok"}
    assert res.artifact("fp32").verification["max_abs_prob_diff"] <= 1e-4


def test_a_killed_worker_stops_the_other_within_a_minute(tmp_path, class_folders):
    port = free_port()
    out = tmp_path / "run"
    common = ["--data", str(class_folders), *TINY, "--epochs", "0", "--fine-tune-epochs", "60", "--out", str(out),
              "--num-processes", "2", "--coordinator", f"127.0.0.1:{port}", "--worker-timeout", "30"]
    with workers() as start:
        w0, w1 = start(*common, "--process-id", "0"), start(*common, "--process-id", "1")
        state = out / "checkpoints" / "state.json"
        deadline = time.monotonic() + 240
        while not state.is_file() and time.monotonic() < deadline and w0.poll() is None:
            time.sleep(0.2)
        assert state.is_file(), w0.communicate(timeout=60)[1][-3000:]
        time.sleep(0.3)  # into the next epoch
        os.killpg(w1.pid, signal.SIGKILL)
        killed = time.monotonic()
        _, err = w0.communicate(timeout=90)
        took = time.monotonic() - killed
    assert w0.returncode != 0
    assert took < 60, took
    last = [line for line in err.splitlines() if line.startswith("edgeport build: error:")]
    assert last and ("another" in last[-1] and "--resume" in last[-1]), err[-3000:]
    assert json.loads(state.read_text())["epoch"] >= 1  # what was completed is kept


def test_a_worker_with_other_options_is_refused_naming_them(tmp_path, class_folders):
    port = free_port()
    common = ["--data", str(class_folders), *TINY, "--fine-tune-epochs", "1", "--out", str(tmp_path / "run"),
              "--num-processes", "2", "--coordinator", f"127.0.0.1:{port}", "--worker-timeout", "60"]
    with workers() as start:
        w0 = start(*common, "--process-id", "0", "--epochs", "2")
        w1 = start(*common, "--process-id", "1", "--epochs", "3")
        errs = [p.communicate(timeout=240)[1] for p in (w0, w1)]
    for p, err in zip((w0, w1), errs):
        assert p.returncode == 2, err[-3000:]
        assert "expected every worker started with worker 0's options" in err and "--epochs 2 on worker 0" in err
    assert "3 here" in errs[1] and "3 on worker 1" in errs[0]
    assert not (tmp_path / "run" / "model.keras").exists()


def test_port_in_use_unreachable_coordinator_and_a_worker_that_never_arrives_are_clear_errors(tmp_path,
                                                                                               class_folders):
    common = ["--data", str(class_folders), *TINY, "--epochs", "1", "--fine-tune-epochs", "0",
              "--num-processes", "2", "--worker-timeout", "3"]
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with workers() as start:
            in_use = start(*common, "--out", str(tmp_path / "a"), "--process-id", "0", "--coordinator",
                           f"127.0.0.1:{port}")
            lost = start(*common, "--out", str(tmp_path / "b"), "--process-id", "1", "--coordinator",
                         f"127.0.0.1:{free_port()}")
            alone = start(*common, "--out", str(tmp_path / "c"), "--process-id", "0", "--coordinator",
                          f"127.0.0.1:{free_port()}")  # worker 1 never comes
            t0 = time.monotonic()
            errs = [p.communicate(timeout=120)[1] for p in (in_use, lost, alone)]
            took = time.monotonic() - t0
    err_in_use, err_lost, err_alone = errs
    assert in_use.returncode == 2 and "expected a free port for --coordinator" in err_in_use, err_in_use[-2000:]
    assert lost.returncode == 2 and "could not reach it within --worker-timeout 3 s" in err_lost, err_lost[-2000:]
    last = [line for line in err_alone.splitlines() if line.startswith("edgeport build: error:")]
    assert alone.returncode == 2 and last, err_alone[-2000:]
    assert "expected all 2 workers at the coordinator" in last[-1] and "--worker-timeout 3 s" in last[-1], last
    # JAX's C++ abort says why in one line; the stack trace absl prints under it is not for the user
    assert "Check failure stack trace" not in err_alone and " @ " not in err_alone, err_alone[-2000:]
    assert took < 60, took  # bounded by --worker-timeout (plus start-up), never a hang
    assert not (tmp_path / "c" / "model.keras").exists()


@pytest.mark.slow
def test_every_worker_resumes_after_one_was_killed(tmp_path, class_folders):
    out = tmp_path / "run"
    common = ["--data", str(class_folders), *TINY, "--epochs", "1", "--fine-tune-epochs", "20", "--out", str(out),
              "--num-processes", "2", "--worker-timeout", "30"]
    state = out / "checkpoints" / "state.json"
    with workers() as start:
        port = free_port()
        w0, w1 = (start(*common, "--coordinator", f"127.0.0.1:{port}", "--process-id", str(i)) for i in (0, 1))
        deadline = time.monotonic() + 240
        while not state.is_file() and time.monotonic() < deadline and w0.poll() is None:
            time.sleep(0.2)
        assert state.is_file(), w0.communicate(timeout=60)[1][-3000:]
        os.killpg(w1.pid, signal.SIGKILL)
        w0.communicate(timeout=90)
        assert w0.returncode != 0
        done = json.loads(state.read_text())
        assert not done["done"]
        port = free_port()  # a new coordinator: the old port may linger in TIME_WAIT
        procs = [start(*common, "--resume", "--coordinator", f"127.0.0.1:{port}", "--process-id", str(i))
                 for i in (0, 1)]
        outs = [p.communicate(timeout=400) for p in procs]
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, err[-3000:]
        assert f"resuming {out} after phase {done['phase']} epoch {done['epoch']}" in err
    finished = json.loads(state.read_text())
    assert finished["done"] and len(finished["history"]) == 1 + 20
    assert [(r["phase"], r["epoch"]) for r in finished["history"][:len(done["history"])]] == \
        [(r["phase"], r["epoch"]) for r in done["history"]]  # what was completed before the kill is kept
    assert (out / "model.keras").is_file()
    assert json.loads((out / "metrics.json").read_text())["runtime"]["processes"] == 2


def test_the_workers_output_is_relayed_as_it_comes_without_the_cpp_stack_trace():
    """A progress bar's unfinished line shows at once; absl's stack trace under a fatal log is dropped, the
    fatal line itself and everything else kept."""
    import io

    from edgeport.build.distributed import _relay

    class Out(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def flush(self) -> None:
            self.seen.append(self.getvalue())

    r, w = os.pipe()
    out = Out()
    relay = threading.Thread(target=_relay, args=(r, out))
    relay.start()
    os.write(w, b"\rtraining 1/3")
    deadline = time.monotonic() + 10
    while not out.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.seen and out.seen[-1] == "\rtraining 1/3"  # before any newline
    os.write(w, b"\rtraining 3/3\nF1204 12:00:00.000000 1 client.h:80] Terminating process\n*** Check failure stack "
                b"trace: ***\n    @     0x7fdfcc640634  absl::LogMessage::SendToLog()\n    @     0x7f")
    os.write(w, b"dfc86eb505  xla::CoordinationServiceAgent::Connect()\nedgeport build: error: worker 0 of 2 stopped\n")
    os.close(w)
    relay.join(timeout=10)
    assert out.getvalue() == ("\rtraining 1/3\rtraining 3/3\nF1204 12:00:00.000000 1 client.h:80] Terminating process\n"
                              "edgeport build: error: worker 0 of 2 stopped\n")


@pytest.mark.parametrize("options, words", [
    (dict(num_processes=2, process_id=2, coordinator="h:1"), "expected --process-id between 0 and 1"),
    (dict(num_processes=2, coordinator="nohost"), "expected --coordinator HOST:PORT"),
    (dict(num_processes=3, coordinator="h:1", batch_size=32), "a multiple of --num-processes 3, received 32"),
    (dict(process_id=1), "expected --num-processes N with --process-id 1"),
    (dict(num_processes=2, coordinator="h:1", devices=2), "expected either --devices or --num-processes"),
])
def test_bad_process_options_are_refused(options, words):
    with pytest.raises(ConfigError, match=words):
        BuildConfig(data="d", out="o", **options).validate()


def test_callbacks_are_refused_with_several_processes(tmp_path, class_folders):
    from edgeport.build import train

    with pytest.raises(ConfigError, match="expected no callbacks with --num-processes"):
        train(BuildConfig(data=str(class_folders), out=str(tmp_path / "r"), backbone="tiny", weights="none",
                          image_size=32, num_processes=1), callbacks=[object()])


def test_the_coordinator_defaults_to_jax_coordinator_address(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    cfg = BuildConfig(data="d", out="o", num_processes=2, process_id=1).resolved()
    cfg.validate()
    assert cfg.coordinator == "10.0.0.1:1234"
    assert BuildConfig(data="d", out="o", num_processes=2, coordinator="h:1").resolved().coordinator == "h:1"
    assert BuildConfig(data="d", out="o").resolved().coordinator == ""  # one process: no coordinator at all
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
    with pytest.raises(ConfigError, match="or JAX_COORDINATOR_ADDRESS"):
        BuildConfig(data="d", out="o", num_processes=2).resolved().validate()
