"""Errors that tell a data engineer what is wrong and where."""


class MxmDagsterError(Exception):
    """Base class for errors raised by mxm_dagster itself."""


class ProjectLoadError(MxmDagsterError):
    """The SQLMesh project cannot be found, read or loaded (path, config, gateway, model files)."""


class WarehouseBusyError(MxmDagsterError):
    """Another run or process holds the project lock or the warehouse file for too long."""


class DestructiveChangeError(MxmDagsterError):
    """SQLMesh would drop data of a forward-only model (e.g. a column) and it was not allowed."""


class UnitTestsFailedError(MxmDagsterError):
    """A SQLMesh unit test of the project failed, so the run planned and ran nothing."""
