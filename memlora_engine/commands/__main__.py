"""``python -m memlora_engine.commands``: the ``memlora`` command."""

from __future__ import annotations

import sys

from memlora_engine.commands import main

sys.exit(main())
