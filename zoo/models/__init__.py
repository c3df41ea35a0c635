"""One file per family; importing this package registers every model."""
from . import linear, mlp  # noqa: F401
