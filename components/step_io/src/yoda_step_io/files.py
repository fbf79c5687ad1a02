"""Outputs that appear whole or not at all.

A step writes each output to a hidden staging path beside its final path (same directory, so the
final rename stays on one file system) and :func:`staged_outputs` renames them into place only when
the block succeeds. On any error the staged files are removed and no final path is touched.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _staging_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")


@contextmanager
def staged_outputs(*finals: Path) -> Iterator[list[Path]]:
    """Yield one staging path per final path; publish them all when the block succeeds.

    The caller writes a file or a directory at each staging path. Existing final paths (a rerun)
    are replaced.
    """
    staging = [_staging_path(Path(final)) for final in finals]
    for path in staging:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
        for path, final in zip(staging, finals, strict=True):
            if not path.exists():
                raise FileNotFoundError(f"step did not write its output {final}")
        for path, final in zip(staging, finals, strict=True):
            _remove(Path(final))
            path.replace(final)
    finally:
        for path in staging:
            _remove(path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file."""
    with staged_outputs(path) as (staging,):
        staging.write_text(text, encoding="utf-8")
