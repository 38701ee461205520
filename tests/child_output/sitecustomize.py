"""Copies what a child process writes, for tests/test_bad_input.py.

That test puts this folder on PYTHONPATH and names a folder in EDGEPORT_TEST_CHILD_LOG, so every Python
process the case starts (a bench worker, for one) imports this at start-up and sends its stdout and stderr
through ``tee`` into ``<pid>.out`` / ``<pid>.err`` there, while its parent still reads them as before. The test
then reads the children's own output: a worker's traceback, or an error its parent cut to one line in a
``reason``, cannot hide.
"""

import os
import subprocess

_log = os.environ.get("EDGEPORT_TEST_CHILD_LOG")
if _log and os.path.isdir(_log):
    for _fd, _kind in ((1, "out"), (2, "err")):
        _tee = subprocess.Popen(["tee", "-a", os.path.join(_log, f"{os.getpid()}.{_kind}")],
                                stdin=subprocess.PIPE, stdout=_fd, stderr=subprocess.DEVNULL)
        os.dup2(_tee.stdin.fileno(), _fd)  # this process writes into tee, which writes where _fd went before
        _tee.stdin.close()
        _tee.returncode = 0  # never waited for: it ends when this process's copy of the pipe closes
