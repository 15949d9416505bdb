"""Where the SQLMesh project is (path, gateway, environment), its fingerprint, spec cache, locks
and serving marker, and where those caches live (the project's `.cache`; MXM_SQLMESH_CACHE_DIR;
for a read-only project folder without it, DAGSTER_HOME's `mxm_dagster/cache`).

Dagster processes read the spec cache; on a miss a child interpreter loads the project and writes
it (ADR 8, ADR 9). The SQLMesh side of a project (configs, Contexts, loading it) is
`mxm_dagster.child.project`, which this module never imports: the SQLMesh child, which holds SQLMesh
already, hands its loader in (`SpecLoader`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from mxm_dagster.common import versions
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.common.files import write_atomically
from mxm_dagster.common.interpreter import child_command, child_env
from mxm_dagster.project.files import project_contents
from mxm_dagster.records.request import PROD
from mxm_dagster.records.selection import ModelSelection
from mxm_dagster.records.specs import LoadedModels

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROJECT_DIR = REPO_ROOT / "sqlmesh_project"
_CONFIG_FILES = ("config.yaml", "config.yml", "config.py")
SPEC_FORMAT = "6"  # bump when a spec record gains or changes a field
#: The child that loads the project on a spec cache miss, and how its one-line reply starts.
SPEC_CHILD_MODULE = "mxm_dagster.child.load_spec"
SPEC_REPLY_PREFIX = "MXM_SPEC "
#: A writable folder for the caches and locks of projects whose folder is read-only (an image).
CACHE_DIR_ENV = "MXM_SQLMESH_CACHE_DIR"
#: Without it, a read-only project's caches go under the Dagster instance's folder, which every
#: process serving the project (code server, run workers, SQLMesh children) shares and may write.
DAGSTER_HOME_ENV = "DAGSTER_HOME"
DAGSTER_HOME_CACHE = Path("mxm_dagster") / "cache"

_log = logging.getLogger(__name__)
#: SQLMesh reads config overrides from variables with this prefix.
_SQLMESH_ENV_PREFIX = "SQLMESH__"
#: Environment variables a config file may read: `env_var('NAME')` in YAML, any upper-case
#: string literal in config.py (`os.environ["NAME"]`, `os.getenv("NAME")`).
_YAML_ENV_NAME = re.compile(r"env_var\(\s*['\"]([^'\"]+)['\"]")
_PY_ENV_NAME = re.compile(r"['\"]([A-Z][A-Z0-9_]*)['\"]")

#: Loads the project with SQLMesh in this process, writes its spec to the cache file and resolves
#: the selection if one is given (`mxm_dagster.child.project.load_into`): what a process that holds
#: SQLMesh already passes, instead of starting a child interpreter for a cache miss.
SpecLoader = Callable[["SQLMeshProject", Path, ModelSelection | None], LoadedModels]

#: The loader of a process that holds SQLMesh already: `mxm_dagster.child.project` hands it in
#: when it is imported (a SQLMesh child, a test, a notebook), so those load a cache miss in place
#: instead of paying another interpreter's SQLMesh import. A Dagster process never imports it.
_loader_here: SpecLoader | None = None


def load_here_with(loader: SpecLoader) -> None:
    """Make `loader` how this process loads a spec cache miss, instead of a child interpreter."""
    global _loader_here
    _loader_here = loader


@dataclass(frozen=True)
class SQLMeshProject:
    """A SQLMesh project as the code location serves it.

    `path` is the project folder; a multi-repo project (SQLMesh's `Context(paths=[...])`, several
    folders sharing one state and warehouse) lists its other folders in `more_paths`. The first
    folder's config decides the connections, as in SQLMesh, and its `.cache` holds SQLMesh's and
    the code location's caches and locks, unless `cache_dir` (default: MXM_SQLMESH_CACHE_DIR)
    names a writable folder for them; a read-only project folder without one keeps them under
    DAGSTER_HOME (`cache_root`).
    """

    path: Path
    gateway: str | None = None
    environment: str = PROD
    more_paths: tuple[Path, ...] = ()
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        # Absolute from the start: the children work in the project folder (SQLMesh's working
        # directory, common/interpreter.py), so a relative path would mean another folder there.
        object.__setattr__(self, "path", _absolute(self.path))
        object.__setattr__(self, "more_paths", tuple(_absolute(p) for p in self.more_paths))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", _absolute(self.cache_dir))

    @classmethod
    def at(
        cls,
        location: str,
        gateway: str | None = None,
        environment: str = PROD,
        cache_dir: str | Path | None = None,
    ) -> SQLMeshProject:
        """The project at `location`: one folder, or several separated by `os.pathsep`."""
        paths = [Path(p).expanduser().resolve() for p in location.split(os.pathsep) if p.strip()]
        if not paths:
            raise ProjectLoadError(f"No SQLMesh project folder in {location!r}")
        cache = Path(cache_dir).expanduser().resolve() if cache_dir else None
        return cls(paths[0], gateway, environment, tuple(paths[1:]), cache)

    @classmethod
    def from_env(cls) -> SQLMeshProject:
        """Read MXM_SQLMESH_PROJECT (folders separated by `os.pathsep`), MXM_SQLMESH_GATEWAY,
        MXM_SQLMESH_ENVIRONMENT and MXM_SQLMESH_CACHE_DIR."""
        return cls.at(
            os.environ.get("MXM_SQLMESH_PROJECT") or str(DEFAULT_PROJECT_DIR),
            gateway=os.environ.get("MXM_SQLMESH_GATEWAY") or None,
            environment=os.environ.get("MXM_SQLMESH_ENVIRONMENT") or PROD,
            cache_dir=os.environ.get(CACHE_DIR_ENV) or None,
        )

    @cached_property
    def cache_root(self) -> Path:
        """The folder of this project's caches: SQLMesh's own (model definitions, optimized
        queries), and in its `mxm_dagster` subfolder the spec cache, the locks and the serving
        markers.

        The project's `.cache` unless a cache folder is named (`cache_dir`, else
        MXM_SQLMESH_CACHE_DIR): then its subfolder for this project, so several projects may share
        it. A read-only project folder (an image) without one uses `mxm_dagster/cache` under
        DAGSTER_HOME the same way: every Dagster process serving the project names the same
        instance folder, so they agree on the locks, as they must (a per-user or temporary
        folder would not). The subfolder is keyed by the project's absolute location, as the
        spec's paths are. Without DAGSTER_HOME either, it is an error.
        """
        named = self.cache_dir or os.environ.get(CACHE_DIR_ENV)
        if named:
            return self._subfolder_of(Path(named))
        default = self.path / ".cache"
        probe = default if default.is_dir() else self.path
        if not self.path.is_dir() or os.access(probe, os.W_OK):
            return default
        home = os.environ.get(DAGSTER_HOME_ENV)
        if not home:
            raise ProjectLoadError(
                f"The SQLMesh project folder {self.path} is read-only, and SQLMesh's cache, the "
                f"spec cache and the run locks need a writable folder: set {DAGSTER_HOME_ENV} "
                f"(they then go to its {DAGSTER_HOME_CACHE}) or {CACHE_DIR_ENV} to a writable "
                "folder, the same for every process serving this project on this machine"
            )
        root = self._subfolder_of(Path(home) / DAGSTER_HOME_CACHE)
        _say_once(self.path, root)
        return root

    def _subfolder_of(self, folder: Path) -> Path:
        """This project's folder in a cache folder several projects may share."""
        key = hashlib.sha1(self.location.encode()).hexdigest()[:12]
        return folder.expanduser().resolve() / f"{self.path.name}-{key}"

    @property
    def sqlmesh_cache_dir(self) -> Path | None:
        """SQLMesh's `cache_dir` for this project: None leaves the project's config as it is."""
        root = self.cache_root
        return None if root == self.path / ".cache" else root

    @property
    def _own_cache(self) -> Path:
        return self.cache_root / "mxm_dagster"

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.path, *self.more_paths)

    @property
    def location(self) -> str:
        """Every folder, as MXM_SQLMESH_PROJECT names them: what crosses to child processes."""
        return os.pathsep.join(str(p) for p in self.paths)

    def check_location(self) -> None:
        """Raise `ProjectLoadError` unless every folder exists and holds a SQLMesh config."""
        for path in self.paths:
            if not path.is_dir():
                raise ProjectLoadError(
                    f"SQLMesh project directory {path} does not exist "
                    "(set MXM_SQLMESH_PROJECT to the folder that holds config.yaml)"
                )
            if not any((path / name).is_file() for name in _CONFIG_FILES):
                raise ProjectLoadError(
                    f"{path} is not a SQLMesh project: no config.yaml or config.py in it"
                )

    @cached_property
    def _connection(self) -> tuple[str, Path | None]:
        """The gateway's name and DuckDB file, as the spec records them (`load_spec` sets it)."""
        return _connection_of(self.load_spec())

    @property
    def gateway_name(self) -> str:
        return self._connection[0]

    @property
    def warehouse_path(self) -> Path | None:
        """The DuckDB warehouse file, when the gateway's warehouse is DuckDB."""
        return self._connection[1]

    @property
    def lock_path(self) -> Path:
        """One lock file per warehouse: runs that write the same DuckDB file take turns, whichever
        gateway they name; other engines are keyed by gateway."""
        target = str(self.warehouse_path) if self.warehouse_path else self.gateway_name
        digest = hashlib.sha1(target.encode()).hexdigest()[:12]
        return self._own_cache / f"warehouse-{digest}.lock"

    def fingerprint(self) -> str:
        """A digest of the project's files (`project_contents`: what SQLMesh reads, not data files
        nor caches), the SQLMesh version, the gateway asked for and the environment variables
        the config reads: the spec cache key, computed without SQLMesh. The folders are part of
        it too: a spec names absolute paths (the DuckDB file, model files), so a copy of the
        project with its `.cache` must not reuse the original's."""
        digest = hashlib.sha256()
        digest.update(f"{SPEC_FORMAT}|{importlib.metadata.version('sqlmesh')}|".encode())
        digest.update(f"{self.location}|".encode())
        digest.update(f"{self.gateway or ''}|".encode())
        for name in sorted(self._config_env_names()):
            digest.update(f"{name}={os.environ.get(name)}|".encode())
        for index, folder in enumerate(self.paths):
            for name, content in project_contents(folder):  # what SQLMesh reads, not every file
                digest.update(f"{index}|{name}|".encode())
                digest.update(content)
        return digest.hexdigest()[:24]

    def _config_env_names(self) -> set[str]:
        names = {name for name in os.environ if name.startswith(_SQLMESH_ENV_PREFIX)}
        for folder in self.paths:
            for file_name in _CONFIG_FILES:
                try:
                    text = (folder / file_name).read_text()
                except OSError:
                    continue
                pattern = _PY_ENV_NAME if file_name.endswith(".py") else _YAML_ENV_NAME
                names.update(pattern.findall(text))
        return names

    def _serving_file(self) -> Path:
        return self.lock_path.with_name(f"{self.lock_path.stem}-{self.environment}-serving.json")

    def known_plan_id(self, fingerprint: str) -> str | None:
        """The plan that, when this code location last looked, made the environment serve
        exactly these project files (`fingerprint`): while it is still the environment's plan,
        a run needs no plan of its own."""
        try:
            marker = json.loads(self._serving_file().read_text())
        except (OSError, ValueError):
            return None
        return marker.get("plan_id") if marker.get("fingerprint") == fingerprint else None

    def remember_plan_id(self, fingerprint: str, plan_id: str) -> None:
        marker = json.dumps({"fingerprint": fingerprint, "plan_id": plan_id})
        write_atomically(self._serving_file(), marker)

    def spec_file(self) -> Path:
        """Where the spec of the project's current version is (or would be) cached."""
        return self._own_cache / f"spec-{self.fingerprint()}.json"

    def selection_file(self, selection: ModelSelection) -> Path:
        """Where the names `selection` picks in the project's current version are cached."""
        name = f"selection-{self.fingerprint()}-{selection.key}.json"
        return self._own_cache / name

    def selected_models(self, selection: ModelSelection) -> frozenset[str]:
        """The fully qualified names of the models SQLMesh's selector picks for `selection`:
        from the cache when the project files are unchanged, else from a child that loads the
        project (and writes its spec on the way), or in this process if it holds SQLMesh."""
        cache_file = self.selection_file(selection)
        names = ModelSelection.read(cache_file)
        if names is None:
            if _loader_here is not None:
                _loader_here(self, self.spec_file(), selection)
            else:
                self._load_in_child(selection)
            names = ModelSelection.read(cache_file)
        if names is None:
            raise ProjectLoadError(f"The model selection of {self.path} vanished once written")
        return names

    def load_spec(self) -> LoadedModels:
        """The project's models, from the spec cache when the project files are unchanged; a miss
        is loaded by a child interpreter, or in place by a process that holds SQLMesh
        (`load_here_with`).

        The code server parses the project once; run workers and step processes reuse its result.

        A cached spec also has to hold *now*: a relative `start` or `end` ('3 days ago') was
        resolved when the spec was made, and resolves into another interval once the clock has
        moved far enough (daily models: at midnight UTC). The spec says from when
        (`LoadedModels.valid_until`), and from then on it is loaded again, into the same cache
        file. The moment is part of the spec, not of the cache key, because only SQLMesh can
        tell that a project has relative times, and the key is computed without it. Projects
        with absolute times only are never reloaded for the clock.
        """
        versions.check_installed()  # before a cached spec hides which SQLMesh made it (ADR 16)
        cache_file = self.spec_file()
        spec = _read_spec(cache_file)
        if spec is not None and not spec.holds_at(int(time.time() * 1000)):
            spec = None
        if spec is None:
            # Only a process that already holds SQLMesh loads it here; any other one (every
            # Dagster process) would pay SQLMesh's import and memory for good, and load it slower.
            loader = _loader_here
            spec = loader(self, cache_file, None) if loader else self._load_in_child()
        # The connection comes with the spec: no second fingerprint for `_connection`.
        object.__setattr__(self, "_connection", _connection_of(spec))
        return spec

    def _load_in_child(self, selection: ModelSelection | None = None) -> LoadedModels:
        """Have `mxm_dagster.child.load_spec` load the project and write the spec (ADR 9), and
        resolve `selection` if given."""
        self.check_location()  # no interpreter to start for a folder that cannot be a project
        arguments = [self.location, self.gateway or "", str(self.cache_dir or "")]
        if selection is not None:
            arguments.append(selection.to_json())
        done = subprocess.run(
            child_command(SPEC_CHILD_MODULE, *arguments),
            env=child_env(),
            cwd=self.path,  # where the `sqlmesh` CLI runs (common/interpreter.py)
            capture_output=True,
            text=True,
        )
        sys.stderr.write(done.stderr)  # SQLMesh's warnings, as a load in this process shows them
        replies = [
            json.loads(line.removeprefix(SPEC_REPLY_PREFIX))
            for line in done.stdout.splitlines()
            if line.startswith(SPEC_REPLY_PREFIX)
        ]
        if not replies:
            detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise ProjectLoadError(
                f"SQLMesh could not load the project at {self.path}: its loading process "
                f"ended without an answer ({detail[0]})"
            )
        if "error" in replies[-1]:
            raise ProjectLoadError(replies[-1]["error"])
        spec = _read_spec(Path(replies[-1]["spec_file"]))
        if spec is None:
            raise ProjectLoadError(f"The spec of {self.path} vanished right after it was written")
        return spec


def _absolute(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _say_once(project: Path, root: Path) -> None:
    """Log where a read-only project's caches went, once: the process that creates the folder
    says so; the others (run workers, SQLMesh children, later starts) find it there."""
    if root.is_dir():
        return
    try:
        root.mkdir(parents=True)
    except FileExistsError:  # another process got there first, and said so
        return
    except OSError as exc:
        raise ProjectLoadError(
            f"The SQLMesh project folder {project} is read-only, and its caches cannot go to "
            f"{root} either ({exc.strerror}): set {CACHE_DIR_ENV} to a writable folder"
        ) from exc
    _log.warning(
        "The SQLMesh project folder %s is read-only: its caches, spec cache and run locks go to "
        "%s (under %s); set %s to choose another folder",
        project,
        root,
        DAGSTER_HOME_ENV,
        CACHE_DIR_ENV,
    )


def _connection_of(spec: LoadedModels) -> tuple[str, Path | None]:
    return spec.gateway, Path(spec.warehouse) if spec.warehouse else None


def _read_spec(cache_file: Path) -> LoadedModels | None:
    """The cached spec in `cache_file`, if there is a whole one."""
    try:
        stat = cache_file.stat()
    except OSError:
        return None
    return _parse_spec(cache_file, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _parse_spec(cache_file: Path, mtime_ns: int, size: int) -> LoadedModels | None:
    """Parsed once per file version: the connection and the models come from the same read."""
    try:
        return LoadedModels.from_json(cache_file.read_text())
    except (ValueError, KeyError, TypeError):
        cache_file.unlink(missing_ok=True)
        return None
    except OSError:
        return None
