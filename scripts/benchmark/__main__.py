"""``python scripts/benchmark [options]``: the benchmark's command line (``benchmark.cli``); also each mode's child."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path.pop(0)  # run as a folder: import the package, not its files as top-level modules
sys.path.insert(0, str(HERE.parent))

from benchmark.cli import main  # noqa: E402

sys.exit(main())
