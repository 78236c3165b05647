"""What pins a study to its ImageFolder tree: the resolved path, and a fingerprint of its files.

A study searches one fixed split. Resumed from another folder, a relative path could name
another tree; images added to the tree would re-split train and val under the finished trials.
The fingerprint (every image's path and size, not its mtime, so a copied tree still matches)
tells the tree a study started with from any other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.data.imagefolder import FolderError, scan_tree
from search.data.options import DataError, is_folder_dataset


@dataclass(frozen=True)
class TreePrint:
    digest: str  # sha256 of the class names and every image's relative path and size
    images: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.digest, "images": self.images}


def pinned_dataset(dataset: str) -> str:
    """A tree's path made absolute (what a study stores); a dataset name, or a path that does not
    exist (loading it says why, and suggests the name meant), as it is."""
    path = Path(dataset).expanduser()
    if not is_folder_dataset(dataset) or not path.exists():
        return dataset
    return str(path.resolve())


def tree_print(dataset: str) -> TreePrint | None:
    """The fingerprint of an ImageFolder tree; None for a dataset known by name, or a path that
    does not exist (loading it says why, in its own words)."""
    root = Path(dataset).expanduser()
    if not is_folder_dataset(dataset) or not root.exists():
        return None
    try:
        classes, train, test = scan_tree(root)
    except FolderError as error:
        raise DataError(str(error)) from None
    digest = hashlib.sha256("\n".join(classes).encode())
    count = 0
    for part in (train, test):
        if part is None:
            continue
        digest.update(b"\n--\n")
        # A stamp is "relative/path size mtime_ns": the mtime is left out.
        digest.update("\n".join(stamp.rsplit(" ", 1)[0] for stamp in part.stamps).encode())
        count += len(part.files)
    return TreePrint(digest.hexdigest(), count)
