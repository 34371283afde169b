"""snapshots' answers to what scoring announces (connected in SnapshotsConfig.ready): a live
worker's periodic tick sweeps the export builds and training runs a dead process left behind."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from scoring import signals as scoring_signals

from . import services, training

logger = logging.getLogger(__name__)


@receiver(scoring_signals.worker_tick)
def _on_worker_tick(**_: Any) -> None:
    exports = services.export_snapshots_sweep()
    runs = training.training_runs_sweep()
    if exports or runs:
        logger.warning("swept %d export builds and %d training runs of dead workers", exports, runs)
