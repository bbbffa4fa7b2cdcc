-- order-webhooks schema, version 12: a month of history kept cheap to read and to keep.
-- Failed attempts found by time. `status` and the web page show the last failure; walking the index
-- of every attempt by time (migration 8) to find it read every delivered attempt since, all the
-- history when nothing failed lately. Only failed attempts are in this one, so it stays small
-- however many deliveries retention keeps.
-- IF NOT EXISTS: a DBA may have built it beforehand with CREATE INDEX CONCURRENTLY (same name).
CREATE INDEX IF NOT EXISTS outbox_attempt_failed ON :SCHEMA.outbox_attempt (started_at) WHERE error IS NOT NULL;

-- Autovacuum by a hundredth of the table rather than PostgreSQL's default fifth: the outbox keeps
-- weeks of delivered rows, and each delivery and each row retention deletes leaves a dead row, so
-- at the default the tables would grow by a fifth of the history before space was reused (and the
-- planner's estimate of delivered events, which `status` shows, would age as long). A storage
-- parameter: no rewrite, no long lock.
ALTER TABLE :SCHEMA.outbox SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01,
                                autovacuum_vacuum_insert_scale_factor = 0.01);
ALTER TABLE :SCHEMA.outbox_attempt SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01,
                                        autovacuum_vacuum_insert_scale_factor = 0.01);
