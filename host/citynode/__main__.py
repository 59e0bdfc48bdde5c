import sys

from citynode.cli import main

sys.exit(main())
