-- A project may name the model its threads' runs use by default (provider/model).
ALTER TABLE projects ADD COLUMN model TEXT;
