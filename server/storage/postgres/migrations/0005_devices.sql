-- The device-key registry. A revoked device keeps its row, so that its id
-- can never be registered again.

CREATE TABLE devices (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    public_key  BYTEA NOT NULL,
    owner       TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    registered  TIMESTAMPTZ NOT NULL,
    revoked     TIMESTAMPTZ             -- NULL while active
);
CREATE INDEX devices_owner ON devices (owner, id);
