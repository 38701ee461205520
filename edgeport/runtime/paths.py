"""What a path that cannot be read as a file or folder really is, for error messages (stdlib only)."""

from __future__ import annotations

import os
import stat


def what_is(path: str | os.PathLike[str]) -> str:
    """'which does not exist', or what the path is instead of a regular file or folder ('which is a named
    pipe (FIFO), not a file', ...). Never opens it (opening a FIFO would block)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "which does not exist"
    except OSError as exc:
        return f"which cannot be read ({exc.strerror or exc})"
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return f"which is {name}, not a regular file" if name != "a regular file" else "which is a file"
    return "which is not a regular file"
