import sys

from clvcast.cli import main

sys.exit(main())
