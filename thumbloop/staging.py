"""Folders that appear whole or not at all: filled beside their place, then renamed into it.

Downloads (bundles, generator bases) and conversions (GGUF to safetensors) are written to a
hidden partial folder next to the destination and moved in with one rename, so a crash or a
kill never leaves half a folder where a reader looks, and two processes on one host doing the
same work both end with a complete folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staging_beside(dst: Path) -> Iterator[Path]:
    """A new empty folder next to ``dst`` (same filesystem, so the final move is a rename);
    removed afterwards with whatever is left in it."""
    partial = dst.with_name(f".{dst.name}.partial-{uuid.uuid4().hex[:8]}")
    partial.mkdir(parents=True)
    try:
        yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def move_into_place(
    src: Path, dst: Path, already_there: Callable[[Path], bool] = lambda _: False
) -> None:
    """Replace ``dst`` with ``src``. If the rename fails because another process put its own
    copy there meanwhile, keep that copy when ``already_there(dst)`` accepts it."""
    if dst.exists():
        shutil.rmtree(dst, ignore_errors=True)
    try:
        os.replace(src, dst)
    except OSError:
        if not already_there(dst):
            raise
