"""SOURCES of a batch (files, folders, globs) -> one item per video file or image folder, each with the relative
path its outputs go under (``DIR/<relative path>/``)."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from core.images import is_image
from fleet.config import BatchError
from stream.sources import glob_folder, is_glob

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"})


@dataclass(frozen=True)
class Item:
    """One file of the batch: ``source`` as `stream.sources.open_source` takes it, ``rel`` its output folder."""

    source: str
    rel: str


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _walk(root: Path, base: Path, skip: Path | None) -> list[Item]:
    """Every video under ``root`` and every folder of it holding images (one image-sequence item each), except
    under ``skip`` (the batch's output folder)."""
    items = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _inside(Path(folder) / d, skip))
        folder_path = Path(folder)
        paths = [folder_path / name for name in sorted(files)]
        items += [Item(str(p), p.relative_to(base).as_posix()) for p in paths if is_video(p)]
        if any(is_image(p) for p in paths):
            rel = folder_path.relative_to(base).as_posix()
            items.append(Item(str(folder_path), rel if rel != "." else folder_path.resolve().name))
    return items


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def expand_sources(specs: list[str], out_dir: Path | None = None) -> list[Item]:
    """Files as given (any suffix: an unreadable one is reported by its worker), folders walked, globs expanded.

    A spec that names nothing (a missing path, a glob matching no video or image) is a `BatchError`; so are two
    items writing the same output folder. Order: as given, each folder and glob in name order. Outputs never
    become inputs: folders and globs skip ``out_dir`` (which may lie inside a source folder), and a file given
    inside it is a `BatchError`; outputs then go only to paths below ``out_dir``, where no input is.
    """
    skip = out_dir.resolve() if out_dir is not None else None
    items: list[Item] = []
    for spec in specs:
        path = Path(spec)
        if is_glob(spec):
            base = glob_folder(spec)
            found: list[Item] = []
            for match in sorted(Path(p) for p in glob.glob(spec, recursive=True)):
                if _inside(match, skip):
                    continue
                if match.is_dir():
                    found += _walk(match, base, skip)
                elif is_video(match):
                    found.append(Item(str(match), match.relative_to(base).as_posix()))
            images = sorted(Path(p) for p in glob.glob(spec, recursive=True)
                            if is_image(Path(p)) and not _inside(Path(p), skip))
            if images and not found:  # a glob of images is one image sequence, as for `driving-detect stream`
                found.append(Item(spec, base.name or "images"))
            if not found:
                raise BatchError(f"'{spec}' matches no video or image")
            items += found
        elif path.is_dir():
            if _inside(path, skip):
                raise BatchError(f"source folder '{spec}' lies inside the output folder '{out_dir}'")
            found = _walk(path, path, skip)
            if not found:
                raise BatchError(f"folder '{spec}' holds no video or image")
            items += found
        elif path.exists():
            if _inside(path, skip):
                raise BatchError(f"source '{spec}' lies inside the output folder '{out_dir}'")
            items.append(Item(spec, path.name))
        else:
            raise BatchError(f"source '{spec}' does not exist")
    seen: dict[str, str] = {}
    for item in items:
        if item.rel in seen and seen[item.rel] != item.source:
            raise BatchError(f"'{seen[item.rel]}' and '{item.source}' would both write '{item.rel}/'")
        seen[item.rel] = item.source
    return list({item.rel: item for item in items}.values())
