-- The device-key registry. A revoked device keeps its row, so that its id
-- can never be registered again.

CREATE TABLE devices (
    id            TEXT    NOT NULL PRIMARY KEY,
    public_key    BLOB    NOT NULL,
    owner         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    registered_us INTEGER NOT NULL,
    revoked_us    INTEGER             -- NULL while active
);
CREATE INDEX devices_owner ON devices (owner, id);
