import sys

from clvcast.cli import console_main

sys.exit(console_main())
