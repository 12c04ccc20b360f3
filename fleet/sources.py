"""SOURCES of a batch (files, folders, globs) -> one item per video file or image folder, each with the relative
path its outputs go under (``DIR/<relative path>/``)."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from core.images import is_image
from fleet.config import BatchError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"})


@dataclass(frozen=True)
class Item:
    """One file of the batch: ``source`` as `stream.sources.open_source` takes it, ``rel`` its output folder."""

    source: str
    rel: str


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _walk(root: Path, base: Path) -> list[Item]:
    """Every video under ``root`` and every folder of it holding images (one image-sequence item each)."""
    items = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        folder_path = Path(folder)
        paths = [folder_path / name for name in sorted(files)]
        items += [Item(str(p), p.relative_to(base).as_posix()) for p in paths if is_video(p)]
        if any(is_image(p) for p in paths):
            rel = folder_path.relative_to(base).as_posix()
            items.append(Item(str(folder_path), rel if rel != "." else folder_path.resolve().name))
    return items


def _glob_base(spec: str) -> Path:
    """The folder part of a glob before its first wildcard: outputs keep the paths below it."""
    parts = Path(spec).parts
    index = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    return Path(*parts[:index]) if index else Path(".")


def expand_sources(specs: list[str]) -> list[Item]:
    """Files as given (any suffix: an unreadable one is reported by its worker), folders walked, globs expanded.

    A spec that names nothing (a missing path, a glob matching no video or image) is a `BatchError`; so are two
    items writing the same output folder. Order: as given, each folder and glob in name order.
    """
    items: list[Item] = []
    for spec in specs:
        path = Path(spec)
        if any(c in spec for c in "*?["):
            base = _glob_base(spec)
            found: list[Item] = []
            for match in sorted(Path(p) for p in glob.glob(spec, recursive=True)):
                if match.is_dir():
                    found += _walk(match, base)
                elif is_video(match):
                    found.append(Item(str(match), match.relative_to(base).as_posix()))
            images = sorted(Path(p) for p in glob.glob(spec, recursive=True) if is_image(Path(p)))
            if images and not found:  # a glob of images is one image sequence, as for `driving-detect stream`
                found.append(Item(spec, base.name or "images"))
            if not found:
                raise BatchError(f"'{spec}' matches no video or image")
            items += found
        elif path.is_dir():
            found = _walk(path, path)
            if not found:
                raise BatchError(f"folder '{spec}' holds no video or image")
            items += found
        elif path.exists():
            items.append(Item(spec, path.name))
        else:
            raise BatchError(f"source '{spec}' does not exist")
    seen: dict[str, str] = {}
    for item in items:
        if item.rel in seen and seen[item.rel] != item.source:
            raise BatchError(f"'{seen[item.rel]}' and '{item.source}' would both write '{item.rel}/'")
        seen[item.rel] = item.source
    return list({item.rel: item for item in items}.values())
