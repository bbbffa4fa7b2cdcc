-- order-webhooks schema, version 2: leaner per-change bookkeeping. Applied by `order-webhooks
-- migrate` in the same transaction as the capture trigger that goes with it, so that no order
-- transaction ever runs the old trigger against the new tables.

-- The idle listener now holds an advisory lock instead of keeping a row here (see capture.sql).
DROP TABLE :SCHEMA.listener;

-- The journal keeps only changes still to map: a change is deleted in the statement that writes its
-- events to the outbox (where change_id still names it), so the journal never needs pruning.
DELETE FROM :SCHEMA.change WHERE processed_at IS NOT NULL;
DROP INDEX :SCHEMA.change_unprocessed;
ALTER TABLE :SCHEMA.change DROP COLUMN processed_at, DROP COLUMN event_count;

-- next_attempt_at is set exactly while an event is pending (when it is due, or when its lease ends)
-- and null once it is delivered or failed. The due index then has its own predicate, which no
-- per-order look-up can match: those must use outbox_order_pending, however stale the statistics.
ALTER TABLE :SCHEMA.outbox ALTER COLUMN next_attempt_at DROP NOT NULL;
UPDATE :SCHEMA.outbox SET next_attempt_at = NULL WHERE status <> 'pending';
ALTER TABLE :SCHEMA.outbox ADD CONSTRAINT outbox_pending_has_next_attempt
  CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL));
DROP INDEX :SCHEMA.outbox_due;
CREATE INDEX outbox_due ON :SCHEMA.outbox (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;

-- A random id for this installation: the key of every event id (src/mapping/eventId.ts), so that event ids
-- are the same each time a change is mapped, and never the same across installations.
CREATE TABLE :SCHEMA.installation (
  singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO :SCHEMA.installation DEFAULT VALUES;
