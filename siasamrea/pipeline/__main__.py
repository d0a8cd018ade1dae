"""``python -m siasamrea.pipeline show-config <stage> ...`` (:mod:`siasamrea.pipeline.cli`)."""

import sys

from siasamrea.pipeline.cli import main

sys.exit(main())
