"""Outputs written in place and removed on failure: safe on Cloud Storage FUSE.

On Vertex AI every artifact path lies on a Cloud Storage FUSE (gcsfuse) mount. There a non-empty
directory cannot be renamed (gcsfuse's ``rename-dir-limit`` is 0 by default on flat buckets) and
a rename from another file system fails with ``EXDEV``, while a new object becomes visible only
once its file is closed. So a step never stages a directory and renames it into place: it writes
each output at its final path inside :func:`outputs_in_place`, which removes everything it wrote
when the block fails. The ExecutorOutput, written last, is the commit point that tells KFP the
outputs are complete. The one rename left is :func:`write_text_atomic`'s: a single file within
its own folder, which gcsfuse supports (copy + delete).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from yoda_step_io.cli import StepError


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a whole directory; nothing if it does not exist."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def outputs_in_place(*finals: Path) -> Iterator[tuple[Path, ...]]:
    """Yield the final paths for the block to write (files or directories) in place.

    An existing final path (a rerun) is removed first and the parent folders are created. If the
    block raises, or leaves an output unwritten, every final path is removed again, so a failed
    step leaves no half-written output behind.
    """
    paths = tuple(Path(final) for final in finals)
    for path in paths:
        remove_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield paths
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise FileNotFoundError(f"step did not write its output(s) {', '.join(missing)}")
    except BaseException:
        for path in paths:
            remove_path(path)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file.

    The text goes to a hidden file in the same folder, renamed over ``path``: a single-file
    rename within one folder, which works on Cloud Storage FUSE too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        staging.write_text(text, encoding="utf-8")
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)


def check_writable(*outputs: Path) -> None:
    """Write and remove a probe file beside each output, before any heavy work.

    Vertex AI and KFP's local ``DockerRunner`` mount the artifact folders with owners the image
    does not choose (the runner's bind mounts belong to root): a step that cannot write there
    should say so at once, not after training.

    Raises:
        StepError: an output folder cannot be created or written.
    """
    for folder in dict.fromkeys(Path(output).parent for output in outputs):
        probe = folder / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            uid = os.getuid()
            raise StepError(
                f"cannot write to the output folder {folder} as uid {uid} "
                f"({error.strerror or error}): run the step's image as root (its default, like "
                f"Google's Vertex AI images) or make {folder} writable for uid {uid}"
            ) from error
