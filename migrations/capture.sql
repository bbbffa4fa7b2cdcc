-- The capture trigger on the order app's table. Not a numbered migration: `order-webhooks migrate`
-- renders it from the config (names quoted by us) and re-installs it when the config changes.
-- Placeholders (each written after a colon): SCHEMA, ORDERS, ID, STATE, OLD_DUE, NEW_DUE, DUE_CHANGED,
-- CHANNEL, WAKE_LOCK, NOTIFY_ALLOWED, MOVED, INSERT_TRIGGER, UPDATE_TRIGGER, DELETE_TRIGGER, DELETE_END_TRIGGER,
-- INSERT_START_TRIGGER, FIRE_ALWAYS.
--
-- On a partitioned table, an UPDATE that moves a row to another partition runs as a DELETE from
-- the old partition and an INSERT into the new one: the AFTER UPDATE trigger does not fire, AFTER
-- DELETE then AFTER INSERT do, one row after the other. So the DELETE trigger keeps the row it saw
-- in a transaction-local setting (:MOVED), and an INSERT of the same id into another table right
-- after it is recorded as the UPDATE it was. A DELETE statement of the app ends by forgetting that
-- row, and so does the start of an INSERT statement (a moving UPDATE fires neither statement
-- trigger): an order the app deletes and inserts again is recorded as created. The INSERT trigger
-- also asks for another table than the DELETE's, which no app's delete-and-insert of a plain table
-- or of one partition can fake.

-- SECURITY DEFINER: the order app's role needs no privilege on our schema. No SET search_path:
-- PostgreSQL saves and restores a function's settings around every call, once per captured row,
-- and that was an eighth of the trigger's cost per row in a bulk statement. Instead nothing in the
-- body is looked up in the caller's search_path: tables, functions and types are schema-qualified,
-- operators are written OPERATOR(pg_catalog.…), and no IS DISTINCT FROM or NULLIF (which look up
-- "=" by name) is used. So nothing in the order app's session can redirect our statements; the
-- trigger definitions below are resolved once, when `migrate` creates them. test/bulk.test.ts
-- writes through a search_path that shadows every name used here. The body does nothing that can
-- fail on a row the orders table accepted (every value is cast to text), so the order app's
-- statement never fails because of us; errors are not swallowed, since a swallowed error would be
-- a lost change.
CREATE OR REPLACE FUNCTION :SCHEMA.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
  moved_text pg_catalog.text;
  moved pg_catalog.jsonb;
  old_state pg_catalog.text;
  old_due pg_catalog.text;
  new_due pg_catalog.text;
BEGIN
  IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
    -- Nothing is recorded for a DELETE: this may be the first half of a move.
    PERFORM pg_catalog.set_config(:MOVED, pg_catalog.jsonb_build_array(TG_RELID::pg_catalog.text, OLD.:ID::pg_catalog.text,
      OLD.:STATE::pg_catalog.text, :OLD_DUE)::pg_catalog.text, true);
    RETURN NULL;
  ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
    moved_text := pg_catalog.current_setting(:MOVED, true);
    IF moved_text OPERATOR(pg_catalog.<>) '' THEN
      moved := moved_text::pg_catalog.jsonb;
    END IF;
    IF moved IS NOT NULL AND moved OPERATOR(pg_catalog.->>) 1 OPERATOR(pg_catalog.=) NEW.:ID::pg_catalog.text
       AND (moved OPERATOR(pg_catalog.->>) 0)::pg_catalog.oid OPERATOR(pg_catalog.<>) TG_RELID THEN
      PERFORM pg_catalog.set_config(:MOVED, '', true);
      -- The second half of a move: an UPDATE, recorded when the state or the due date changed.
      old_state := moved OPERATOR(pg_catalog.->>) 2;
      old_due := moved OPERATOR(pg_catalog.->>) 3;
      new_due := :NEW_DUE;
      IF ((old_state OPERATOR(pg_catalog.=) NEW.:STATE::pg_catalog.text) IS TRUE OR (old_state IS NULL AND NEW.:STATE IS NULL))
         AND ((old_due OPERATOR(pg_catalog.=) new_due) IS TRUE OR (old_due IS NULL AND new_due IS NULL)) THEN
        RETURN NULL;
      END IF;
      INSERT INTO :SCHEMA.change (order_id, op, old_state, new_state, old_due_date, new_due_date)
      VALUES (NEW.:ID::pg_catalog.text, 'UPDATE', old_state, NEW.:STATE::pg_catalog.text, old_due, new_due);
    ELSE
      INSERT INTO :SCHEMA.change (order_id, op, new_state, new_due_date)
      VALUES (NEW.:ID::pg_catalog.text, 'INSERT', NEW.:STATE::pg_catalog.text, :NEW_DUE);
    END IF;
  ELSE
    INSERT INTO :SCHEMA.change (order_id, op, old_state, new_state, old_due_date, new_due_date)
    VALUES (NEW.:ID::pg_catalog.text, 'UPDATE', OLD.:STATE::pg_catalog.text, NEW.:STATE::pg_catalog.text, :OLD_DUE, :NEW_DUE);
  END IF;
  -- NOTIFY is only a wake-up, and it is sent only to an idle listener: one that is listening and
  -- not draining holds the wake lock exclusively (src/capture/wakeLock.ts), so our shared try fails. While
  -- it drains, or while no service runs, the try succeeds and we hold the shared lock until commit:
  -- a listener cannot go idle before this transaction's change is visible to it.
  -- NOTIFY folds duplicates within a transaction: a bulk UPDATE sends one.
  -- Never where a PREPARE TRANSACTION could follow: PostgreSQL would refuse it, and the order app's
  -- write would be lost (database.wakeUp, src/capture/wakeUp.ts). The service then polls instead.
  IF :NOTIFY_ALLOWED THEN
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(:WAKE_LOCK) THEN
      PERFORM pg_catalog.pg_notify(:CHANNEL, '');
    END IF;
  END IF;
  RETURN NULL;
END
$fn$;

-- Forgets the row a DELETE trigger kept: run at statement boundaries no move spans.
CREATE OR REPLACE FUNCTION :SCHEMA.capture_forget_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
BEGIN
  PERFORM pg_catalog.set_config(:MOVED, '', true);
  RETURN NULL;
END
$fn$;

-- OR REPLACE rather than DROP and CREATE: replacing needs only the TRIGGER privilege on the orders
-- table, dropping needs its ownership (docs/security.md, "Roles and privileges").
-- Row triggers on a partitioned table are cloned onto every partition, present and future.
CREATE OR REPLACE TRIGGER :INSERT_TRIGGER AFTER INSERT ON :ORDERS
  FOR EACH ROW EXECUTE FUNCTION :SCHEMA.capture_change();

-- Only when the state or the due date changed: other updates cost the order app nothing.
CREATE OR REPLACE TRIGGER :UPDATE_TRIGGER AFTER UPDATE ON :ORDERS
  FOR EACH ROW WHEN (OLD.:STATE IS DISTINCT FROM NEW.:STATE:DUE_CHANGED)
  EXECUTE FUNCTION :SCHEMA.capture_change();

CREATE OR REPLACE TRIGGER :DELETE_TRIGGER AFTER DELETE ON :ORDERS
  FOR EACH ROW EXECUTE FUNCTION :SCHEMA.capture_change();

-- Statement triggers. No WHEN on the AFTER one: PostgreSQL tests an AFTER trigger's WHEN when the
-- statement's rows are done, before the row triggers that set the setting have run.
CREATE OR REPLACE TRIGGER :DELETE_END_TRIGGER AFTER DELETE ON :ORDERS
  FOR EACH STATEMENT EXECUTE FUNCTION :SCHEMA.capture_forget_move();

-- The WHEN test spares an INSERT statement with nothing to forget a function call.
CREATE OR REPLACE TRIGGER :INSERT_START_TRIGGER BEFORE INSERT ON :ORDERS
  FOR EACH STATEMENT WHEN (current_setting(:MOVED, true) <> '')
  EXECUTE FUNCTION :SCHEMA.capture_forget_move();
:FIRE_ALWAYS
