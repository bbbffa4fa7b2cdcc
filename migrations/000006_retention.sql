-- order-webhooks schema, version 6: retention. The running service deletes delivered events older
-- than `retention.delivered` (and, when set, failed events whose last attempt is older than
-- `retention.failed`), a small batch at a time. These partial indexes let it find the oldest such
-- rows without reading the rest of the outbox, and let /metrics count failed events cheaply.
-- Building them holds writes to the outbox (not to the orders table: the trigger writes only to the
-- journal) for as long as a read of the outbox takes.
-- IF NOT EXISTS: a DBA may have built them beforehand with CREATE INDEX CONCURRENTLY (same names).
CREATE INDEX IF NOT EXISTS outbox_delivered_at ON :SCHEMA.outbox (delivered_at) WHERE status = 'delivered';
CREATE INDEX IF NOT EXISTS outbox_failed ON :SCHEMA.outbox (created_at) WHERE status = 'failed';
