"""Run damaged model files through a real engine, one forked process per file (used by test_fuzz.py).

    python fuzz_child.py CASES.json

CASES.json is a list of {"path", "mode", "source"}: mode "cli" runs
``edgeport run PATH --source SOURCE --max-frames 1 --headless`` through
``edgeport.cli.main``; mode "engine" loads PATH with the engine for its file
type, invokes it once on zeros and prints ``ok {shape, dtype, values,
declared_shape, declared_dtype}``. Each case runs in its own fork of this
process (an engine that crashes on a malformed file takes only that fork
down) with a timeout, and one JSON line per case is printed: rc, signal,
timed_out, and the case's stdout/stderr.

Everything heavy is imported here once, before forking, but nothing is run:
the forks start from a process that has no engine threads yet.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

import numpy as np

import edgeport.cli
from edgeport.errors import EdgeportError
from edgeport.runtime import create_engine, engines_for

TIMEOUT_S = 30.0


def _engine_case(path: str) -> int:
    names = engines_for(path)
    if not names:
        print("no engine", file=sys.stderr)
        return 3
    try:
        with create_engine(names[0], path) as eng:
            x = np.zeros(eng.input.shape, eng.input.dtype)
            out = np.asarray(eng.invoke(x))
            print("ok " + json.dumps({"shape": list(out.shape), "dtype": str(out.dtype), "values": int(out.size),
                                      "declared_shape": list(eng.output.shape),
                                      "declared_dtype": str(eng.output.dtype)}))
        return 0
    except EdgeportError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _run_case(case: dict) -> int:
    if case["mode"] == "cli":
        return edgeport.cli.main(["run", case["path"], "--source", case["source"], "--max-frames", "1", "--headless"])
    return _engine_case(case["path"])


def main(cases_file: str) -> int:
    with open(cases_file) as f:
        cases = json.load(f)
    for case in cases:
        log = tempfile.TemporaryFile()
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the fork: output into the log, exit with the case's code, no cleanup handlers
            code = 70
            try:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                code = _run_case(case)
            except BaseException:  # noqa: BLE001 - a traceback is the failure being looked for
                import traceback

                traceback.print_exc()
                code = 71
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        timed_out = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - t0 > TIMEOUT_S:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.01)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
        log.close()
        print(json.dumps({**case, "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                          "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                          "timed_out": timed_out, "seconds": round(time.monotonic() - t0, 3),
                          "output": text[-3000:]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
