"""Opening, loading and closing SQLMesh Contexts."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlmesh import Context
from sqlmesh.core.config import Config
from sqlmesh.core.console import set_console

from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.child.sqlmesh_api.console import ANSI, AuditFailureListener, ForwardingConsole
from mxm_dagster.common.errors import ProjectLoadError

# SQLMesh compiles some built-in audit macros to Python that compares with `is not` a literal;
# the warning is about SQLMesh's generated code, not the user's project, and floods run logs.
warnings.filterwarnings("ignore", category=SyntaxWarning, message='"is not" with a literal')


def open_context(
    configs: dict[Path, Config],
    gateway: str | None,
    recorder: OutcomeRecorder | None = None,
    load: bool = True,
) -> Context:
    """Build a SQLMesh Context over the project folders in `configs` whose console reports into
    `recorder`.

    Several folders make a multi-repo project: SQLMesh loads each with its own config and takes
    connections and state from the first. The console is global in SQLMesh and must be set before
    the Context is built. `load=False` reads no model files (state and connections only), as
    SQLMesh's own `sqlmesh run` does; `load_models` loads them later.
    """
    paths = list(configs)
    console = ForwardingConsole(recorder or OutcomeRecorder())
    set_console(console)
    listener = AuditFailureListener()
    listener._console = console
    with _load_errors(paths[0]):
        context = Context(
            paths=paths,
            config=dict(configs),
            gateway=gateway,
            load=load,
            notification_targets=[listener],
        )
    console.view_dialect = context.default_dialect
    manager = context.notification_target_manager
    if manager.username:  # SQLMesh then notifies only that user's targets
        manager.user_notification_targets.setdefault(manager.username, set()).add(listener)
    return context


def load_models(context: Context, project_dir: Path) -> None:
    """Load the project's model files into a Context opened with `load=False`."""
    with _load_errors(project_dir):
        context.load()


@contextmanager
def _load_errors(project_dir: Path) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        message = ANSI.sub("", str(exc))
        raise ProjectLoadError(
            f"SQLMesh could not load the project at {project_dir}: {type(exc).__name__}: {message}"
        ) from exc


def close_context(context: Context) -> None:
    """Release every warehouse and state connection so no DuckDB file lock outlives the call."""
    try:
        context.close()
    except Exception:  # closing must never hide the error that got us here
        pass
