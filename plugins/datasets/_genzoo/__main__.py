"""``python -m dfzoo.plugins.datasets._genzoo``: the zoo build's child process (see :mod:`.process`)."""

import sys

from .process import main

sys.exit(main())
