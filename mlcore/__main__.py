"""``python -m mlcore``: see :mod:`mlcore.cli`."""

import sys

from mlcore.cli import main

sys.exit(main())
