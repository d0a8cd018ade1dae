"""``python -m siasamrea.training --config run.yaml [--set key=value ...]``: one training run (see
:mod:`.cli`)."""

import sys

from siasamrea.training.cli import main

sys.exit(main())
