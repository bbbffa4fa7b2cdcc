-- order-webhooks schema, version 7: only the head of an order's queue is due. Of an order's pending
-- events, only the earliest (its head) has a next_attempt_at; the later ones wait with none, so they
-- are not in outbox_due, and a claim walks only heads that are due, not every event that waits
-- behind one (during a receiver outage those outnumbered the heads a hundred to one, and each claim
-- read all of them). When a head leaves `pending`, the trigger below makes the next event of its
-- order due, in the same statement.
-- Stop every running instance before applying it: an older release would insert waiting events due.
-- Each step can be applied again (IF EXISTS, OR REPLACE), so a schema taken back to an earlier
-- version by deleting rows of :SCHEMA.migration migrates forward again.

ALTER TABLE :SCHEMA.outbox DROP CONSTRAINT IF EXISTS outbox_pending_has_next_attempt;
ALTER TABLE :SCHEMA.outbox DROP CONSTRAINT IF EXISTS outbox_done_has_no_next_attempt;
-- Delivered and failed events still have none; a pending event may now have none (it waits).
ALTER TABLE :SCHEMA.outbox ADD CONSTRAINT outbox_done_has_no_next_attempt
  CHECK (status = 'pending' OR next_attempt_at IS NULL);

-- Events already waiting behind an earlier pending event of their order wait without a time.
UPDATE :SCHEMA.outbox o SET next_attempt_at = NULL
 WHERE o.status = 'pending'
   AND EXISTS (SELECT 1 FROM :SCHEMA.outbox p WHERE p.order_id = o.order_id AND p.status = 'pending' AND p.id < o.id);

-- When an event leaves `pending` (delivered, failed, or by an operator's hand), the next pending
-- event of its order becomes due now, unless it already has a time. The look-up runs in the trigger,
-- after our row is locked and with a snapshot of its own: it sees an event that a concurrent move
-- inserted behind ours while we waited for its lock (the move locks the order's earliest pending
-- event while it decides, see src/outbox/journal.ts), so no event is left waiting behind nothing.
CREATE OR REPLACE FUNCTION :SCHEMA.outbox_due_next() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  UPDATE :SCHEMA.outbox n SET next_attempt_at = now()
   WHERE n.id = (SELECT p.id FROM :SCHEMA.outbox p
                  WHERE p.order_id = NEW.order_id AND p.status = 'pending'
                  ORDER BY p.id LIMIT 1)
     AND n.next_attempt_at IS NULL;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS outbox_due_next ON :SCHEMA.outbox;
CREATE TRIGGER outbox_due_next AFTER UPDATE OF status ON :SCHEMA.outbox
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
  EXECUTE FUNCTION :SCHEMA.outbox_due_next();
