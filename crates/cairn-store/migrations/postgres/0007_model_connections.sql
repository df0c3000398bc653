-- Model providers an administrator connected in the app. The key is stored
-- only sealed (AEAD, by the auth crate's key ring); key_hint is its last four
-- characters. models is the configuration's list of models, as JSON.
CREATE TABLE model_connections (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    base_url TEXT NOT NULL,
    api_version TEXT NOT NULL,
    key_ciphertext BYTEA,
    key_hint TEXT,
    models JSONB NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
