"""A Cloud Storage FUSE stand-in for renames, loaded by every Python process of a test run.

Python imports ``sitecustomize`` at start-up from its path, so a test that puts this folder first
on ``PYTHONPATH`` guards every step process KFP's local runner starts (and anything they start).
Renames then behave as on Vertex AI's gcsfuse mount (flat bucket, default flags):

- renaming a directory fails with ``ENOSYS`` (gcsfuse's ``rename-dir-limit`` is 0), anywhere;
- renaming a file between ``$YODA_FUSE_GUARD_ROOT`` (the "mount") and elsewhere fails with
  ``EXDEV``, as a rename from ``/tmp`` to ``/gcs`` does.

Each process records in ``$YODA_FUSE_GUARD_LOG`` that it is guarded, every rename it made or was
refused, and every tree it removed (the Trainer's checkpoint rotation among them), so a test can
check that the guard was really in place; and, at exit, which of the heavy optional modules it
imported (:data:`WATCHED`), so a test can check that no step imports what it does not use.
"""

# os.path, not pathlib: this runs at every interpreter start-up (pyproject.toml lets PTH pass).
from __future__ import annotations

import atexit
import errno
import functools
import os
import shutil
import sys
from typing import Any

_ROOT = os.path.realpath(os.environ.get("YODA_FUSE_GUARD_ROOT", "/gcs"))
#: Modules a step should import only where it uses them.
WATCHED = ("bitsandbytes", "torch._dynamo", "torch.distributed.fsdp")
_LOG = os.environ.get("YODA_FUSE_GUARD_LOG", "")


def _record(line: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {line}\n")


def _on_mount(path: Any) -> bool:
    real = os.path.realpath(os.fsdecode(path))
    return real == _ROOT or real.startswith(_ROOT + os.sep)


def _guarded(original: Any, name: str) -> Any:
    @functools.wraps(original)
    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.isdir(src) and not os.path.islink(src):
            _record(f"refused {name} of directory {os.fsdecode(src)} -> {os.fsdecode(dst)}")
            raise OSError(errno.ENOSYS, "Function not implemented (gcsfuse: directory rename)", src)
        if _on_mount(src) != _on_mount(os.path.dirname(os.path.abspath(os.fsdecode(dst)))):
            _record(f"refused {name} across file systems {os.fsdecode(src)} -> {os.fsdecode(dst)}")
            raise OSError(errno.EXDEV, "Invalid cross-device link", src)
        original(src, dst, *args, **kwargs)
        _record(f"{name} {os.fsdecode(src)} -> {os.fsdecode(dst)}")

    return rename


def _recorded_rmtree(original: Any) -> Any:
    @functools.wraps(original)  # keeps rmtree.avoids_symlink_attacks
    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        _record(f"rmtree {os.fsdecode(path)}")
        original(path, *args, **kwargs)

    return rmtree


if not getattr(os, "_yoda_fuse_guard", False):
    os.rename = _guarded(os.rename, "rename")
    os.replace = _guarded(os.replace, "replace")
    shutil.rmtree = _recorded_rmtree(shutil.rmtree)  # type: ignore[assignment]
    os._yoda_fuse_guard = True  # type: ignore[attr-defined]
    _record(f"guarded {' '.join(getattr(sys, 'argv', []) or ['?'])}")

    def _imported() -> None:
        loaded = [name for name in WATCHED if sys.modules.get(name) is not None]
        _record(f"exit imported [{' '.join(loaded)}]")

    atexit.register(_imported)
