import sys

from vssavsr.encode.cli import main

sys.exit(main())
