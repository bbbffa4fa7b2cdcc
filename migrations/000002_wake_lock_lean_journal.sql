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

-- One index per order serves both the per-order order (earliest pending event) and look-ups by order.
DROP INDEX :SCHEMA.outbox_order_pending;
DROP INDEX :SCHEMA.outbox_order;
CREATE INDEX outbox_order ON :SCHEMA.outbox (order_id, id);
