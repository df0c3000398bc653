-- The trace a run belongs to (a W3C traceparent), so a run resumed after an
-- approval or an answer goes on in the trace it began in. NULL when traces
-- are off.
ALTER TABLE runs ADD COLUMN trace_parent TEXT;
