"""Paths a user names (storage files, output folders): refused, naming the real cause, when no
file of ours can live there."""

from __future__ import annotations

from pathlib import Path

from search.errors import InputError

# Kernel file systems: files there are not storage, and writing them can change the machine.
_SYSTEM_ROOTS = (Path("/proc"), Path("/sys"))
# Most file systems allow 255 bytes a name and Linux 4096 a path.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4000


class PathError(InputError):
    """A path that no file of this project can have."""


def check_path(path: Path, what: str) -> None:
    """Refuse a name too long for a file system, or a place under /proc or /sys."""
    too_long = any(len(part.encode()) > MAX_NAME_BYTES for part in path.parts)
    if too_long or len(str(path).encode()) > MAX_PATH_BYTES:
        raise PathError(f"{what} {str(path)[:60]!r}... has a name too long for a file system "
                        f"(at most {MAX_NAME_BYTES} bytes a name)")
    resolved = path.expanduser().resolve()
    if any(resolved.is_relative_to(root) for root in _SYSTEM_ROOTS):
        raise PathError(f"{what} {str(path)!r} is under /{resolved.parts[1]}, a kernel file "
                        "system, not a place for files")


def check_output_folder(folder: Path, what: str = "output folder") -> None:
    """Refuse, before any work, a folder that cannot be made: a file on its way, a bad path."""
    check_path(folder, what)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise PathError(f"{what} {str(folder)!r} cannot be made: {str(parent)!r} is a "
                                "file, not a folder")
            return
