"""``python -m handoff_conformance URL`` runs the kit as the ``handoff-conformance`` command does."""

import sys

from handoff_conformance.cli import main

sys.exit(main())
