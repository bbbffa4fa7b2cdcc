-- The capture trigger on the order app's table. Not a numbered migration: `order-webhooks migrate`
-- renders it from the config (names quoted by us) and re-installs it when the config changes.
-- Placeholders: :SCHEMA, :ORDERS, :ID, :STATE, :OLD_DUE, :NEW_DUE, :DUE_CHANGED, :CHANNEL, :WAKE_LOCK,
-- :NOTIFY_ALLOWED, :INSERT_TRIGGER, :UPDATE_TRIGGER.

-- SECURITY DEFINER with a pinned search_path: the order app's role needs no privilege on our schema,
-- and nothing in its session can redirect our statements. The body does nothing that can fail on a
-- row the orders table accepted (every value is cast to text), so the order app's statement never
-- fails because of us; errors are not swallowed, since a swallowed error would be a lost change.
CREATE OR REPLACE FUNCTION :SCHEMA.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO :SCHEMA.change (order_id, op, new_state, new_due_date)
    VALUES (NEW.:ID::text, 'INSERT', NEW.:STATE::text, :NEW_DUE);
  ELSE
    INSERT INTO :SCHEMA.change (order_id, op, old_state, new_state, old_due_date, new_due_date)
    VALUES (NEW.:ID::text, 'UPDATE', OLD.:STATE::text, NEW.:STATE::text, :OLD_DUE, :NEW_DUE);
  END IF;
  -- NOTIFY is only a wake-up, and it is sent only to an idle listener: one that is listening and
  -- not draining holds the wake lock exclusively (src/wakeLock.ts), so our shared try fails. While
  -- it drains, or while no service runs, the try succeeds and we hold the shared lock until commit:
  -- a listener cannot go idle before this transaction's change is visible to it.
  -- NOTIFY folds duplicates within a transaction: a bulk UPDATE sends one.
  -- Never where a PREPARE TRANSACTION could follow: PostgreSQL would refuse it, and the order app's
  -- write would be lost (database.wakeUp, src/capture/wakeUp.ts). The service then polls instead.
  IF :NOTIFY_ALLOWED THEN
    IF NOT pg_try_advisory_xact_lock_shared(:WAKE_LOCK) THEN
      PERFORM pg_notify(:CHANNEL, '');
    END IF;
  END IF;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS :INSERT_TRIGGER ON :ORDERS;
DROP TRIGGER IF EXISTS :UPDATE_TRIGGER ON :ORDERS;

CREATE TRIGGER :INSERT_TRIGGER AFTER INSERT ON :ORDERS
  FOR EACH ROW EXECUTE FUNCTION :SCHEMA.capture_change();

-- Only when the state or the due date changed: other updates cost the order app nothing.
CREATE TRIGGER :UPDATE_TRIGGER AFTER UPDATE ON :ORDERS
  FOR EACH ROW WHEN (OLD.:STATE IS DISTINCT FROM NEW.:STATE:DUE_CHANGED)
  EXECUTE FUNCTION :SCHEMA.capture_change();
