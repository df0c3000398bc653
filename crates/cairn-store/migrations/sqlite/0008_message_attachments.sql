-- Library files a member attached to a message (a JSON array of paths in
-- the thread's project), which the agent loads for the model.
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
