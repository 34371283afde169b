"""The SQL of the data browser's full-text documents (PostgreSQL), shared by the migration that
creates and fills them (review/migrations/0003_trace_search.py) and the queue refresh that adds
the documents of new traces (review.services). Plain strings: no model is imported here.

One document per trace: to_tsvector('english') of its problem and every step, GIN-indexed, so a
search is one index lookup over traces even for a word that most of a million steps contain.
"""

from __future__ import annotations

INDEX = (
    "CREATE INDEX IF NOT EXISTS review_tracesearch_document ON review_tracesearch "
    "USING gin (document)"
)

# {where}: "" for every trace, or a condition on t (the trace).
FILL = """
INSERT INTO review_tracesearch (trace_id, document)
SELECT t.id, to_tsvector('english', p.text || ' ' || coalesce(string_agg(s.text, ' '), ''))
FROM annotate_trace t
JOIN annotate_problem p ON p.id = t.problem_id
LEFT JOIN annotate_step s ON s.trace_id = t.id
{where}
GROUP BY t.id, p.text
ON CONFLICT (trace_id) DO NOTHING
"""

# Traces whose document matches the words of %s (all of them, stemmed: plainto_tsquery).
MATCHING = (
    "SELECT trace_id FROM review_tracesearch WHERE document @@ plainto_tsquery('english', %s)"
)
