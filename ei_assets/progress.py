"""The progress channel: lines for people about a long command (blocks done, waits, summaries).

The CLI prints them to stdout; in Dagster they also go to the run's log through context.log.
"""

from __future__ import annotations

import logging

progress = logging.getLogger("ei_assets.progress")
