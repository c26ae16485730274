"""BoxRun kernel: a Jupyter kernel that runs the notebook's code in a BoxRun box."""

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext boxrun_kernel``: the ``%boxrun`` magics (imported only then)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
