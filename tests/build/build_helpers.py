"""Helpers for the build tests (imported by them; not a test module)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def tiny_config(data: Path | str, out: Path | str, **kw):
    """A seconds-fast BuildConfig (tiny backbone, 32 px, no progress output)."""
    from edgeport.build import BuildConfig

    base = dict(data=str(data), out=str(out), backbone="tiny", weights="none", head="gap", image_size=32,
                epochs=2, fine_tune_epochs=1, batch_size=16, seed=0, progress="off")
    base.update(kw)
    return BuildConfig(**base)


def kill_script(**config) -> str:
    """Python source that trains ``BuildConfig(data=argv[1], out=argv[2], **config)`` and SIGKILLs itself at the
    end of its ``argv[3]``-th epoch (the resume tests' interrupted run)."""
    return textwrap.dedent("""
        import os, signal, sys
        import keras
        from edgeport.build import BuildConfig, train

        class KillAfterEpochs(keras.callbacks.Callback):
            seen = 0

            def on_epoch_end(self, epoch, logs=None):
                KillAfterEpochs.seen += 1
                if KillAfterEpochs.seen == int(sys.argv[3]):
                    os.kill(os.getpid(), signal.SIGKILL)

        train(BuildConfig(data=sys.argv[1], out=sys.argv[2], **CONFIG), callbacks=[KillAfterEpochs()])
    """).replace("CONFIG", repr(config))
