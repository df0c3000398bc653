-- A thread may name the model its runs use (provider/model); NULL: the deployment's default.
ALTER TABLE threads ADD COLUMN model TEXT;
