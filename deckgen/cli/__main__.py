"""`python -m deckgen.cli`: the same as the `deckgen` command."""

import sys

from deckgen.cli import main

sys.exit(main())
