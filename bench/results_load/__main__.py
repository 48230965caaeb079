"""``python -m bench.results_load``."""

import sys

from bench.results_load.main import main

sys.exit(main())
