-- A run's answer is posted once: a worker that takes over a run whose
-- answer was posted (its holder died before marking it succeeded) finds it
-- instead of posting a second one.
ALTER TABLE messages ADD COLUMN run_id BLOB;
CREATE UNIQUE INDEX messages_run_answer ON messages (run_id) WHERE run_id IS NOT NULL;
