-- The claim log (D41): idempotency keys claimed since the last merge, in
-- claim order. A claim is appended here, next to the rows the same commit
-- already writes, instead of being inserted into message_dedup, whose
-- (sender, client id) key is random: one random insert dirties one page of
-- that tree per message, and every dirty page is written to the WAL at
-- commit and again by the checkpoint. The append loop keeps the log's rows
-- in memory, reads the rows other processes appended at the start of each
-- group, and merges the log into message_dedup in key order once it holds
-- a few thousand rows, so a page of message_dedup is written once per
-- merge rather than once per message. A live entry is the newest one of
-- its key: here if the key has a row here, in message_dedup otherwise.
-- Ids only increase, so that a process that has read up to id N never
-- misses a later row: a merge keeps the newest row (already merged, so
-- harmless to merge again) rather than emptying the table, and the next id
-- is one above it. (AUTOINCREMENT would do the same at the cost of a
-- sqlite_sequence page written by every commit.)
-- channel_id has no foreign key here: the claim is written with its
-- message, whose insert already needs the channel, and the merge into
-- message_dedup checks the key there.

CREATE TABLE message_claims (
    id         INTEGER PRIMARY KEY,
    sender     TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    channel_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    digest     BLOB    NOT NULL,
    at_us      INTEGER NOT NULL
);
