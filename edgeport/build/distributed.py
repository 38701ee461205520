"""``edgeport build --num-processes N``: start this worker on Keras' JAX engine and watch it (no TensorFlow here).

Keras picks its backend when it is first imported, and a build without the flag keeps TensorFlow, so
a worker always trains in a child process of its own whose ``KERAS_BACKEND`` is ``jax``
(:func:`launch`; the ``edgeport build`` process, or a Python program that already imported Keras,
only waits for it). The child dies with its parent (Linux: PR_SET_PDEATHSIG), so killing a worker
kills its training. The child joins the others through ``jax.distributed`` (worker 0 runs the
coordination service on ``--coordinator``'s port), checks that every worker was started with the
same options and data, and trains (:mod:`edgeport.build.jax_engine`).

Faults end in a bounded time with one clear line: a coordinator port in use or never reachable, a
worker that never arrives (``--worker-timeout``), a worker that dies (its peers' next collective
fails at once; one stuck without dying is declared dead after ``--worker-timeout`` seconds without a
heartbeat). JAX ends a process whose peer is gone with an abort from C++; this module says what it
means (and drops the C++ stack trace from the worker's output). Nothing completed is lost: restart every worker with ``--resume``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeport.build.config import BuildConfig, RunResult
from edgeport.config import from_dict, to_dict
from edgeport.errors import ConfigError, DataError, EdgeportError, MissingDependencyError, ModelError

log = logging.getLogger("edgeport.build")

#: what the worker child is doing, written to its status file (read when it dies without a word)
STAGES = ("starting", "joining", "training", "finishing")
INSTALL_HINT = "pip install 'edgeport[distributed]' (jax[cpu]; on NVIDIA GPUs: pip install 'jax[cuda12]')"
#: options that may differ between workers: the worker's own index, its view of the shared paths, its output
PER_WORKER = ("process_id", "progress", "data", "out", "coordinator")
_ERRORS = {cls.__name__: cls for cls in (ConfigError, DataError, ModelError, MissingDependencyError)}


class WorkerError(EdgeportError):
    """A worker of a multi-process build lost the others, or never found them."""


# ----------------------------------------------------------------------------- the parent: start and watch
def launch(cfg: BuildConfig) -> RunResult:
    """Run this worker (``cfg.process_id`` of ``cfg.num_processes``) in a JAX child process; its result or error."""
    with tempfile.TemporaryDirectory(prefix="edgeport-worker-") as tmp:
        status, result, config = Path(tmp) / "status", Path(tmp) / "result.json", Path(tmp) / "config.json"
        config.write_text(json.dumps(to_dict(cfg)))
        env = dict(os.environ, KERAS_BACKEND="jax", EDGEPORT_PARENT_PID=str(os.getpid()))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # TensorFlow (tf.data) and JAX share a GPU's host
        cmd = [sys.executable, "-m", "edgeport.build.distributed", str(config), str(status), str(result)]
        # the child's stderr comes through a pipe (a terminal's own pseudo-terminal when ours is one, so that its
        # progress bars stay bars) and is relayed without JAX's C++ stack trace (_relay)
        tty = sys.stderr.isatty()
        reader, writer = os.openpty() if tty else os.pipe()
        try:
            child = subprocess.Popen(cmd, env=env, stderr=writer)
        finally:
            os.close(writer)
        relay = threading.Thread(target=_relay, args=(reader, sys.stderr), daemon=True, name="edgeport-worker-stderr")
        relay.start()
        try:
            code = child.wait()
        except BaseException:  # Ctrl-C or SIGTERM of this process: the worker stops with it
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
        finally:
            relay.join(timeout=10)
        answer = json.loads(result.read_text()) if result.is_file() else None
        stage = status.read_text().strip() if status.is_file() else "starting"
    if answer and "error" in answer:
        raise _ERRORS.get(answer.get("kind", ""), WorkerError)(answer["error"])
    if code == 0 and answer:
        return RunResult(run_dir=answer["run_dir"], metrics=answer["metrics"], history=answer["history"], config=cfg)
    raise WorkerError(_death_message(cfg, stage, code))


#: the lines of the stack trace absl prints under a fatal log (JAX's distributed service ends a worker whose peer is
#: gone that way): dropped from the worker's output, whose own last line says what the end means
_ABSL_TRACE = re.compile(r"^(\*\*\* Check failure stack trace: \*\*\*|\s+@\s+0x[0-9a-f]+\s.*)\r?$")


def _relay(fd: int, out) -> None:
    """Copy what the worker writes to ``fd`` to ``out`` as it comes, less :data:`_ABSL_TRACE`'s lines; ``fd`` is
    closed at the end (the worker gone)."""
    pending = ""
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pseudo-terminal whose other end closed
                chunk = b""
            if not chunk:
                break
            pending += chunk.decode("utf-8", errors="replace")
            *lines, pending = pending.split("\n")
            text = "".join(line + "\n" for line in lines if not _ABSL_TRACE.match(line))
            if pending and pending[0] not in " \t*":  # not the start of a trace line (those begin with these)
                text, pending = text + pending, ""  # e.g. a progress bar's line in progress: shown now
            if text:
                out.write(text)
                out.flush()
        if pending and not _ABSL_TRACE.match(pending):
            out.write(pending)
            out.flush()
    except (OSError, ValueError):  # our stderr closed: nothing left to show it on
        pass
    finally:
        os.close(fd)


def _death_message(cfg: BuildConfig, stage: str, code: int) -> str:
    who = f"worker {cfg.process_id} of {cfg.num_processes}"
    how = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 and -code in signal.Signals._value2member_map_ \
        else f"exit code {code}"
    if code > 0:  # a Python error of its own, not an end imposed by JAX's distributed service
        return f"{who} stopped with an unexpected error ({how}) while {stage}; the traceback above says where"
    if stage == "joining":
        return (f"{who} stopped while joining ({how}): expected all {cfg.num_processes} workers at the coordinator "
                f"{cfg.coordinator} within --worker-timeout {cfg.worker_timeout} s, received fewer; start every "
                f"worker with --num-processes {cfg.num_processes} and the same --coordinator, each with its own "
                "--process-id, within that time (the lines above may say more)")
    if stage in ("training", "finishing"):
        return (f"{who} stopped ({how}): expected every worker to keep answering, but another one died or "
                f"stopped answering for --worker-timeout {cfg.worker_timeout} s (JAX's distributed service ends the "
                "others then; see that worker's output). Nothing completed is lost: restart every worker with "
                "--resume")
    return f"{who} stopped before joining ({how}); the lines above say why"


# ----------------------------------------------------------------------------- between the workers (jax)
def _jax() -> tuple[Any, Any]:
    import jax
    from jax.experimental import multihost_utils

    return jax, multihost_utils


def broadcast_bytes(payload: bytes | None) -> bytes:
    """Worker 0's ``payload`` on every worker (the others pass None)."""
    jax, multihost_utils = _jax()
    chief = jax.process_index() == 0
    size = int(multihost_utils.broadcast_one_to_all(np.array([len(payload) if chief else 0], np.int32))[0])
    buf = np.zeros(max(size, 1), np.uint8)
    if chief:
        buf[:size] = np.frombuffer(payload, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buf))[:size].tobytes()


def broadcast_json(value: Any) -> Any:
    jax, _ = _jax()
    return json.loads(broadcast_bytes(json.dumps(value).encode() if jax.process_index() == 0 else None))


def broadcast_arrays(arrays: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """Worker 0's arrays (dtype and shape kept) on every worker; raw bytes, so int64/float64 stay exact."""
    jax, _ = _jax()
    chief = jax.process_index() == 0
    meta = broadcast_json([[str(a.dtype), list(a.shape)] for a in arrays] if chief else None)
    data = broadcast_bytes(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays) if chief else None)
    out, at = [], 0
    for dtype, shape in meta:
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        out.append(np.frombuffer(data[at:at + count], dtype).reshape(shape).copy())
        at += count
    return out


def gather_bytes(payload: bytes) -> list[bytes]:
    """Every worker's ``payload``, in process order, on every worker."""
    _, multihost_utils = _jax()
    sizes = np.asarray(multihost_utils.process_allgather(np.array([len(payload)], np.int32))).reshape(-1)
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[:len(payload)] = np.frombuffer(payload, np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
    return [rows[i, :int(n)].tobytes() for i, n in enumerate(sizes)]


def worker_options(cfg: BuildConfig, src: Any) -> dict[str, Any]:
    """What must be the same on every worker: the options (but PER_WORKER) and the data each one read."""
    import hashlib

    options = {k: v for k, v in to_dict(cfg).items() if k not in PER_WORKER}
    data: dict[str, Any] = {"classes": list(src.classes)}
    for split, (items, labels) in sorted(src.splits.items()):
        digest = hashlib.sha256()
        for item, label in zip(items, labels):
            name = Path(item).name if isinstance(item, (str, os.PathLike)) else np.asarray(item).tobytes()
            digest.update(f"{name}\t{int(label)}\n".encode() if isinstance(name, str) else name)
        data[split] = f"{len(labels)} images, sha256 of their names and labels {digest.hexdigest()[:12]}"
    options["images"] = data
    return options


def check_same_options(cfg: BuildConfig, src: Any) -> None:
    """Every worker refuses to train when one was started with options (or data) other than worker 0's."""
    mine = worker_options(cfg, src)
    everyone = [json.loads(b) for b in gather_bytes(json.dumps(mine, sort_keys=True).encode())]
    first = everyone[0]
    problems = []
    for i, other in enumerate(everyone[1:], start=1):
        keys = sorted(set(first) | set(other))
        diff = [f"{_flag(k)} {_shown(first.get(k))} on worker 0, {_shown(other.get(k))} here" if i == cfg.process_id
                else f"{_flag(k)} {_shown(first.get(k))} on worker 0, {_shown(other.get(k))} on worker {i}"
                for k in keys if first.get(k) != other.get(k)]
        if diff:
            problems.append(f"worker {i}: " + "; ".join(diff))
    if problems:
        raise ConfigError(
            "expected every worker started with worker 0's options and data, received different ones ("
            + " | ".join(problems) + "); start every worker with the same flags and data, only --process-id "
            "differs")


def _flag(key: str) -> str:
    return "the images" if key == "images" else "--" + key.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return repr(value)


# ----------------------------------------------------------------------------- the child: join and train
def _die_with_parent() -> None:
    parent = int(os.environ.get("EDGEPORT_PARENT_PID", "0") or 0)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if parent and os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(128 + signal.SIGKILL)


def wait_for_coordinator(cfg: BuildConfig) -> None:
    """A worker other than 0: the coordinator's port must answer within --worker-timeout (else a clear error)."""
    host, _, port = cfg.coordinator.rpartition(":")
    deadline = time.monotonic() + cfg.worker_timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.5)
    raise WorkerError(
        f"expected worker 0's coordinator at {cfg.coordinator}, could not reach it within --worker-timeout "
        f"{cfg.worker_timeout} s ({last}); start worker 0 with the same --coordinator, check the host name and "
        "that the port is open between the machines")


def check_port_free(cfg: BuildConfig) -> None:
    """Worker 0: the coordinator's port must be free here (JAX's own failure there may crash the process)."""
    port = int(cfg.coordinator.rpartition(":")[2])
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "")):  # where JAX listens: [::]:PORT
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: a closing socket is no user
            try:
                probe.bind((address, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno not in (98, 48):  # not EADDRINUSE: IPv6 unusable
                    continue
                raise ConfigError(f"expected a free port for --coordinator {cfg.coordinator} on this machine "
                                  f"(worker 0 listens there), but port {port} is in use ({exc.strerror}); choose "
                                  "another port and give the same --coordinator to every worker") from exc
        return


def join(cfg: BuildConfig) -> None:
    """jax.distributed.initialize with edgeport's timeouts; a port in use is a clear error."""
    from edgeport._lazy import require

    try:
        jax = require("jax", "training across processes")
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"expected JAX for --num-processes (Keras' distributed engine), but it "
                                     f"could not be imported; install it with: {INSTALL_HINT}") from exc
    if cfg.num_processes <= 1:
        return
    if cfg.process_id:
        wait_for_coordinator(cfg)
    else:
        check_port_free(cfg)
    try:
        jax.distributed.initialize(coordinator_address=cfg.coordinator, num_processes=cfg.num_processes,
                                   process_id=cfg.process_id, initialization_timeout=cfg.worker_timeout,
                                   heartbeat_timeout_seconds=cfg.worker_timeout,
                                   shutdown_timeout_seconds=max(300, cfg.worker_timeout))
    except RuntimeError as exc:  # JaxRuntimeError is one
        if cfg.process_id == 0 and "Failed to start RPC server" in str(exc):
            raise ConfigError(f"expected a free port for --coordinator {cfg.coordinator} on this machine "
                              f"(worker 0 listens there), but it is in use; choose another port and give the same "
                              "--coordinator to every worker") from exc
        raise WorkerError(f"worker {cfg.process_id} could not join the others at {cfg.coordinator}: "
                          f"{str(exc).splitlines()[0]}") from exc


def _lost_peers(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("Gloo", "gloo", "UNAVAILABLE", "Connection closed", "DEADLINE_EXCEEDED",
                                   "heartbeat", "coordination service"))


def worker_main(config_path: str, status_path: str, result_path: str) -> int:
    """The child: train one worker; write its result or its error to ``result_path``."""
    from edgeport.files import write_json

    _die_with_parent()
    status = Path(status_path)
    cfg = from_dict(BuildConfig, json.loads(Path(config_path).read_text()), config_path)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"edgeport: worker {cfg.process_id}/{cfg.num_processes}: %(message)s")
    for name in ("tensorflow", "absl", "jax", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    engine = None
    try:
        status.write_text("joining")
        join(cfg)
        from edgeport.build import inputs

        src = inputs.load_source(cfg)
        check_same_options(cfg, src)  # before TensorFlow and Keras load: a refused worker stops in seconds
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")  # TensorFlow only reads data here; the GPUs are JAX's
        from edgeport.build.jax_engine import JaxEngine
        status.write_text("training")
        engine = JaxEngine(cfg)
        from edgeport.build.trainer import run

        result = run(cfg, (), src, engine)
        status.write_text("finishing")
        write_json(Path(result_path), {"run_dir": result.run_dir, "metrics": result.metrics,
                                       "history": result.history})
        code = 0
    except EdgeportError as exc:
        write_json(Path(result_path), {"error": str(exc), "kind": type(exc).__name__})
        code = 2
    except Exception as exc:  # a peer's death surfaces as whatever the collective raised (re-raised if not)
        if not _lost_peers(exc):
            raise
        first = str(exc).strip().splitlines()[0][:300]
        write_json(Path(result_path), {"error": (
            f"worker {cfg.process_id} of {cfg.num_processes} lost the others: expected every worker to keep "
            f"answering, but a collective failed ({type(exc).__name__}: {first}): another worker died or stopped; "
            "see its output. Nothing completed is lost: restart every worker with --resume"), "kind": "WorkerError"})
        code = 1
    finally:
        if engine is not None:
            engine.close()
    sys.stdout.flush()
    sys.stderr.flush()
    if code and cfg.num_processes > 1:
        os._exit(code)  # JAX's exit handler would wait for the lost workers, then abort
    return code


if __name__ == "__main__":
    sys.exit(worker_main(*sys.argv[1:4]))
