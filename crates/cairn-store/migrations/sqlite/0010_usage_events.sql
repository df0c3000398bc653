-- Usage totals add up the `usage` events of a project's threads (one per
-- model call); this index finds them without reading the rest of each log.
CREATE INDEX events_usage ON events (thread_id) WHERE kind = 'usage';
