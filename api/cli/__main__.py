"""`python -m cairn.api.cli`: how `cairn up` starts its children."""

import sys

from cairn.api.cli.main import main

sys.exit(main())
