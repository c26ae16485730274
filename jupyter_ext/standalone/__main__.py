"""``python -m jupyter_ext.standalone`` is the ``boxrun`` command."""

import sys

from .cli import main

sys.exit(main())
