"""``python -m zoo``: the ``zoo`` command, handed over through the facade (:data:`zoo._EXPORTS`
maps ``main`` to :func:`zoo.factory.cli.main`, the layer that assembles every command)."""
import sys

import zoo

sys.exit(zoo.main())
