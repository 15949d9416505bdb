"""The files of a SQLMesh project folder that make up its version: what the spec cache key hashes.

Real project folders hold more than SQLMesh reads: dangling symlinks (SQLMesh's own dbt example
ships one), editor lock files (Emacs's `.#model.sql`, a symlink to nowhere), FIFOs, caches,
virtual environments, data files. The key walks the folder as SQLMesh's loader does
(sqlmesh/core/loader.py, 0.236), without importing SQLMesh:

- **What SQLMesh reads** (`config.*`, `external_models.yaml`, the files its loader globs in
  `models/`, `macros/`, `audits/`, `tests/`, ...), minus what the config's `ignore_patterns`
  match. Symlinks are followed where SQLMesh follows them (files yes, folders under `**` no). Such
  a file that cannot be read stops the load with an error naming it, as SQLMesh's load would, but
  clearer. A FIFO or socket is skipped: SQLMesh skips a model file of size 0.
- **What can change what SQLMesh loads**, best effort: every other file in those folders (a seed
  in `seeds/`), the seed files SEED models name elsewhere, and every Python file of the project
  (models and macros import them: SQLMesh puts the folder on `sys.path`); in a dbt project, every
  file dbt may read. Entries that cannot be read are skipped.
- **Never**: caches (`.cache`, `logs`, `__pycache__`, tool caches), `.git`, virtual environments
  (`.venv`, any folder with a `pyvenv.cfg`), editor lock and swap files, and data files a model
  reads at run time by relative path (`read_csv('data/x.csv')`, a Python model's `open`): they are
  data, not project code, and SQLMesh's own fingerprints do not cover them either.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import yaml

from mxm_dagster.common.errors import ProjectLoadError

#: SQLMesh's folders and the file endings its loader globs in them at any depth (`**/*<ending>`).
SQLMESH_FOLDERS: dict[str, tuple[str, ...]] = {
    "models": (".sql", ".py"),
    "macros": (".py", ".sql"),
    "audits": (".sql",),
    "signals": (".py",),
    "metrics": (".sql",),
    "linter": (".py",),
    "materializations": (".py",),
    "external_models": (".yaml",),
    "tests": (".yaml", ".yml"),  # only files named test*
    "seeds": (),  # read through SEED models: every file counts, none is required
}
#: Files SQLMesh reads in the folder itself when they exist, besides `config.*`.
SQLMESH_ROOT_FILES = ("external_models.yaml", "schema.yaml", "sqlmesh-requirements.lock")
#: SQLMesh's default `ignore_patterns` (sqlmesh/core/constants.py).
DEFAULT_IGNORE_PATTERNS = (".ipynb_checkpoints/*",)
#: Folders no loader reads: caches, version control, virtual environments, build output.
SKIPPED_DIRS = frozenset(
    {
        ".cache",
        "logs",
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        "target",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".ipynb_checkpoints",
        "node_modules",
    }
)
_SKIPPED_SUFFIXES = (".duckdb", ".wal", ".tmp", ".lock", ".pyc", ".swp", ".swo", "~")
_SEED_PATH = re.compile(rb"\bSEED\s*\(\s*path\s+['\"]([^'\"]+)['\"]", re.IGNORECASE)


def project_contents(folder: Path) -> Iterator[tuple[str, bytes]]:
    """The name (relative to `folder`) and content of every file the spec cache key hashes, in
    a stable order: `project_files`, then the seed files SEED models name elsewhere. Each file
    is read once.

    Raises `ProjectLoadError` naming a file SQLMesh would read that cannot be read.
    """
    listed = project_files(folder)
    seeds: set[Path] = set()
    for file in listed:
        content = _read(file)
        yield os.path.relpath(file, folder), content
        if file.suffix == ".sql":
            for path in _SEED_PATH.findall(content):
                seed = Path(os.fsdecode(path)).expanduser()
                seeds.add(Path(os.path.normpath(file.parent / seed)))
    extra: set[Path] = set()
    for seed in seeds.difference(listed):
        _take(seed, extra, required=False)
    for seed in sorted(extra):
        yield os.path.relpath(seed, folder), _read(seed)


def project_files(folder: Path) -> list[Path]:
    """The files of `folder` SQLMesh reads, and those it may import, sorted; each readable.

    Raises `ProjectLoadError` naming a file SQLMesh would read that cannot be read.
    """
    patterns = _ignore_patterns(folder)
    ignored = _ignore_matchers(folder, patterns or ())
    found: set[Path] = set()
    for config in sorted(folder.glob("config.*")):
        _take(config, found, required=patterns is not None)
    for name in SQLMESH_ROOT_FILES:
        if (folder / name).exists():
            _take(folder / name, found, required=True)
    for sub, endings in SQLMESH_FOLDERS.items():
        for file in _walk(folder / sub, skip_dirs=frozenset(), with_dirs=True):
            if any(file.match(pattern) for pattern in ignored):
                continue
            read = _sqlmesh_reads(file, sub, endings)
            _take(file, found, required=read and patterns is not None)
    dbt = (folder / "dbt_project.yml").exists()
    for file in _walk(folder, skip_dirs=SKIPPED_DIRS):
        if (dbt or file.suffix == ".py") and not _editor_file(file.name):
            if not file.name.endswith(_SKIPPED_SUFFIXES):
                _take(file, found, required=False)
    return sorted(found)


def _sqlmesh_reads(file: Path, sub: str, endings: tuple[str, ...]) -> bool:
    if sub == "tests" and not file.name.startswith("test"):
        return False
    return bool(endings) and file.name.endswith(endings)


def _walk(top: Path, skip_dirs: frozenset[str], with_dirs: bool = False) -> list[Path]:
    """Files and file-like entries below `top` (and its folders too `with_dirs`: SQLMesh's glob
    returns a folder named like a model); symlinked folders are not entered (SQLMesh's `**` does
    not enter them either), nor `skip_dirs` and virtual environments."""
    files: list[Path] = []
    for root, dirs, names in os.walk(top):
        dirs[:] = [
            d
            for d in dirs
            if d not in skip_dirs and not (skip_dirs and Path(root, d, "pyvenv.cfg").exists())
        ]
        files.extend(Path(root, name) for name in ((*dirs, *names) if with_dirs else names))
    return files


def _take(file: Path, found: set[Path], required: bool) -> None:
    """Add `file` if it is a readable regular file; raise for an unreadable `required` one."""
    if file in found:
        return
    try:
        mode = file.stat().st_mode  # follows the symlink, as reading does
        if stat.S_ISREG(mode) and os.access(file, os.R_OK):
            found.add(file)
            return
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            return  # a FIFO, socket or device: reading it would block; SQLMesh skips size 0
        problem = "it is a folder" if stat.S_ISDIR(mode) else "permission denied"
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        if file.is_symlink():
            problem = f"{problem}: a symlink to {os.readlink(file)}"
    if required:
        raise ProjectLoadError(
            f"SQLMesh reads {file} ({problem}), so the project cannot load: remove it, or name "
            "it in ignore_patterns of the project's config.yaml (an editor's lock files: '.#*')"
        )


def _editor_file(name: str) -> bool:
    return name.startswith(".#") or (name.startswith("#") and name.endswith("#"))


def _ignore_patterns(folder: Path) -> tuple[str, ...] | None:
    """The config's `ignore_patterns` with SQLMesh's defaults (SQLMesh extends them), or None
    when they cannot be known without SQLMesh (a config.py, a YAML only SQLMesh's templating
    reads): then no file is required, and SQLMesh itself reports one it cannot read."""
    if not any((folder / name).exists() for name in ("config.yaml", "config.yml")):
        return None
    patterns = list(DEFAULT_IGNORE_PATTERNS)
    for name in ("config.yaml", "config.yml"):
        try:
            raw = yaml.safe_load((folder / name).read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError, yaml.YAMLError):
            return None
        listed = raw.get("ignore_patterns") if isinstance(raw, dict) else None
        if listed is not None and not (
            isinstance(listed, list) and all(isinstance(p, str) for p in listed)
        ):
            return None
        patterns.extend(listed or ())
    return tuple(patterns)


def _ignore_matchers(folder: Path, patterns: tuple[str, ...]) -> tuple[str, ...]:
    """What SQLMesh's `Loader._glob_paths` matches each file against: the patterns themselves,
    and the paths they glob in the project folder."""
    globbed = {p for pattern in patterns for p in glob.glob(str(folder / pattern), recursive=True)}
    return (*patterns, *sorted(globbed))


def _read(file: Path) -> bytes:
    try:
        with open(file, "rb") as source:
            return source.read()
    except OSError as exc:  # gone since it was listed: this version is not the next one
        return f"unreadable {exc.errno}".encode()
