"""What the labelling side announces, for the apps that build on it (the queue, in review).

annotate imports no app to its right: review connects to these in its AppConfig.ready. Each is
sent synchronously, inside the transaction of the write it announces, so that a receiver's write
commits or rolls back with it.
"""

from __future__ import annotations

from django.dispatch import Signal

# An annotator submitted (or resubmitted) their labels of a trace. Arguments: user, trace.
annotation_submitted = Signal()
# An annotator started labelling a trace (their first label of it created their annotation).
# Arguments: user, trace. The queue leases a slot then, not when a trace is opened.
annotation_started = Signal()
# An annotator is still at work on a trace (an active-time heartbeat). Arguments: user, trace.
annotation_active = Signal()
# An import added traces to a project. Arguments: project.
traces_imported = Signal()
