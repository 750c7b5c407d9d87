"""`python -m tools.cluster ...` (from the repository's root): see tools/cluster/cli.py."""

import sys

from tools.cluster.cli import main

sys.exit(main())
