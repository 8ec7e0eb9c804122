import sys

from initspec.cli import main

sys.exit(main())
