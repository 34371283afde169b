"""What the model side announces, for the apps that build on it (the queue, in review).

scoring imports no app to its right: review connects to these in its AppConfig.ready. Sent
synchronously, inside the transaction that wrote the scores.
"""

from __future__ import annotations

from django.dispatch import Signal

# A score run finished with new step scores. Arguments: project, trace_ids.
scores_written = Signal()
# A live worker's periodic sweep (every few heartbeats): the apps to the right sweep their own
# jobs a dead process left behind (export snapshots, training runs). No arguments.
worker_tick = Signal()
