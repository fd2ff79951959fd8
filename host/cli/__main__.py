"""``python -m host.cli``: the same as ``penctl``."""

import sys

from host.cli.main import main

sys.exit(main())
