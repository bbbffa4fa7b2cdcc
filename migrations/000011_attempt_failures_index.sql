-- order-webhooks schema, version 11: failed attempts found by time. `status` and the web page show
-- the last failure; walking the index of every attempt by time (migration 8) to find it read every
-- delivered attempt since, all the history when nothing failed lately. Only failed attempts are in
-- this one, so it stays small however many deliveries retention keeps.
-- IF NOT EXISTS: a DBA may have built it beforehand with CREATE INDEX CONCURRENTLY (same name).
CREATE INDEX IF NOT EXISTS outbox_attempt_failed ON :SCHEMA.outbox_attempt (started_at) WHERE error IS NOT NULL;
