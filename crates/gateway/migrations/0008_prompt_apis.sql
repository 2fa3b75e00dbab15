-- Prompt-encapsulated APIs and their immutable versions.
CREATE TABLE prompt_apis (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    slug            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('draft', 'published', 'deprecated', 'retired')),
    current_version INTEGER NOT NULL,
    deprecated_at   TEXT,
    sunset_at       TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    version         INTEGER NOT NULL
) STRICT;

CREATE TABLE prompt_api_versions (
    api_id     TEXT NOT NULL REFERENCES prompt_apis (id) ON DELETE CASCADE,
    number     INTEGER NOT NULL,
    definition TEXT NOT NULL,            -- JSON PromptDefinition
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (api_id, number)
) STRICT;

-- Versions never change once written.
CREATE TRIGGER prompt_api_versions_immutable BEFORE UPDATE ON prompt_api_versions
BEGIN
    SELECT RAISE(ABORT, 'prompt API versions are immutable');
END;
