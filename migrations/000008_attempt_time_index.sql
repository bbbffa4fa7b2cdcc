-- order-webhooks schema, version 8: attempts found by time. `status`, `check` and the web page ask
-- what was delivered or failed in the last minutes or hour; without this index each such question
-- read every attempt row kept (30 days of them by default). Attempts are inserted in time order, so
-- the index grows at its right edge and costs the delivery path little.
CREATE INDEX IF NOT EXISTS outbox_attempt_started ON :SCHEMA.outbox_attempt (started_at);
