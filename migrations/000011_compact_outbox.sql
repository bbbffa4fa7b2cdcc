-- order-webhooks schema, version 11: a smaller outbox. Each delivered event kept cost its outbox row,
-- an attempt row and the indexes of both (docs/operations.md, "Sizing"); with 30 days kept that is
-- most of what we add to the customer's database. From this version:
-- - an event delivered at its first attempt has no outbox_attempt row: its outbox row already says
--   when (delivered_at, now the time that attempt started), how long (response_ms) and with what
--   status (last_status), and `first_try` says so. The `attempts` view shows the row it would have
--   had;
-- - the body is stored only when it is not the spec's body made from order_id and event_type (it
--   always is, today): `event_body` makes it, and the events are sent and shown with that;
-- - outbox pages are filled: rows are not updated in place (every update changes an indexed column),
--   so the room that fillfactor 80 kept on each page served nothing.
-- Every step changes the catalog only: no row is rewritten, no index built, and rows written by
-- earlier versions read as before (they have their body and their attempt rows). Instances of the
-- previous release may run while it is applied (their rows are valid rows of this version), but
-- stop them before this release's start: they would send an event written here without its body.
-- Each step can be applied again.

ALTER TABLE :SCHEMA.outbox ALTER COLUMN body DROP NOT NULL;
ALTER TABLE :SCHEMA.outbox SET (fillfactor = 100);

-- The spec's body, byte for byte as the service makes it (JSON.stringify of {orderId, eventType}):
-- to_json escapes a string as JSON.stringify does ("\"", "\\", \b \f \n \r \t, other control
-- characters as lowercase \u00xx, nothing else). The writers store NULL only when this gives back
-- exactly the body they were given (NULLIF), so a body read back is always the one signed.
CREATE OR REPLACE FUNCTION :SCHEMA.event_body(order_id text, event_type text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT '{"orderId":' || to_json(order_id)::text || ',"eventType":' || to_json(event_type)::text || '}'
$$;

-- True when the event was delivered at its first attempt and this row is that attempt's only record
-- (it has no outbox_attempt row); null otherwise, and in every row of earlier versions. Null by
-- default: adding it changes the catalog only.
ALTER TABLE :SCHEMA.outbox ADD COLUMN IF NOT EXISTS first_try boolean;

-- The operator views of migration 9 with the body made when not stored, and the attempts of events
-- delivered at their first try (same columns, same order).
CREATE OR REPLACE VIEW :SCHEMA.events AS
SELECT o.event_id, o.order_id, o.event_type, o.status, o.attempts,
       o.created_at, o.next_attempt_at, o.delivered_at, o.replayed_at,
       o.last_status, o.last_error_kind, o.last_error, o.response_ms,
       :SCHEMA.attempt_in_flight(o) AS in_flight,
       o.attempts - (SELECT count(DISTINCT a.attempt) FROM :SCHEMA.outbox_attempt a WHERE a.outbox_id = o.id)::int
         - CASE WHEN :SCHEMA.attempt_in_flight(o) OR o.first_try THEN 1 ELSE 0 END AS unrecorded_attempts,
       o.id AS outbox_id, coalesce(o.body, :SCHEMA.event_body(o.order_id, o.event_type)) AS body, o.endpoint
  FROM :SCHEMA.outbox o;

-- The attempt rows, then the attempts recorded in outbox rows. started_at of a first-try delivery
-- is its delivered_at, so that a question by time ("the last hour's attempts") finds those rows in
-- outbox_delivered_at as it finds the others in outbox_attempt_started, and one by event finds
-- both by outbox_event_id_key. (An ORDER BY started_at … LIMIT with neither sorts every attempt:
-- src/outbox/status.ts reads the tables for "the last failure" and "the last success".)
CREATE OR REPLACE VIEW :SCHEMA.attempts AS
SELECT o.event_id, o.order_id, o.event_type, a.attempt, a.started_at, a.duration_ms, a.http_status,
       CASE WHEN a.error IS NULL THEN 'delivered' ELSE coalesce(a.error_kind, 'failed') END AS outcome,
       a.error_kind, a.error, o.status AS event_status, o.id AS outbox_id, o.endpoint
  FROM :SCHEMA.outbox_attempt a
  JOIN :SCHEMA.outbox o ON o.id = a.outbox_id
UNION ALL
SELECT o.event_id, o.order_id, o.event_type, 1, o.delivered_at, o.response_ms, o.last_status,
       'delivered', NULL, NULL, o.status, o.id, o.endpoint
  FROM :SCHEMA.outbox o
 WHERE o.first_try AND o.status = 'delivered';

-- Replay as in migration 9, but an event delivered at its first try gets its attempt row first: once
-- pending again, its outbox row no longer describes that attempt.
CREATE OR REPLACE FUNCTION :SCHEMA.replay_outbox(ids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  replayed integer;
BEGIN
  PERFORM 1 FROM :SCHEMA.outbox q
   WHERE q.status = 'pending'
     AND q.order_id IN (SELECT o.order_id FROM :SCHEMA.outbox o WHERE o.id = ANY(ids) AND o.status <> 'pending')
   ORDER BY q.id  -- the order in which the service's writes lock rows too: no deadlock with them
     FOR UPDATE;
  WITH picked AS (
    SELECT o.id FROM :SCHEMA.outbox o
     WHERE o.id = ANY(ids) AND o.status <> 'pending'
     ORDER BY o.id
       FOR UPDATE)
  INSERT INTO :SCHEMA.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status)
  SELECT o.id, o.event_id, 1, o.delivered_at, o.response_ms, o.last_status
    FROM :SCHEMA.outbox o
   WHERE o.id IN (SELECT id FROM picked) AND o.first_try;
  WITH picked AS (
    SELECT o.id, o.order_id, o.endpoint FROM :SCHEMA.outbox o
     WHERE o.id = ANY(ids) AND o.status <> 'pending'
       FOR UPDATE),
  outbox_busy AS (
    SELECT q.endpoint, q.order_id, max(q.next_attempt_at) AS until
      FROM :SCHEMA.outbox q
     WHERE q.status = 'pending' AND q.order_id IN (SELECT order_id FROM picked) AND :SCHEMA.attempt_in_flight(q)
     GROUP BY q.endpoint, q.order_id),
  journal_busy AS (
    SELECT c.order_id, max(c.claimed_until) AS until
      FROM :SCHEMA.change c
     WHERE c.claimed_until > now() AND c.order_id IN (SELECT order_id FROM picked)
     GROUP BY c.order_id),
  done AS (
    UPDATE :SCHEMA.outbox o
       SET status = 'pending', delivered_at = NULL, replayed_at = now(), first_try = NULL,
           next_attempt_at = greatest(now(), ob.until, jb.until)
      FROM picked p
      LEFT JOIN outbox_busy ob ON ob.order_id = p.order_id AND ob.endpoint = p.endpoint
      LEFT JOIN journal_busy jb ON jb.order_id = p.order_id
     WHERE o.id = p.id
    RETURNING 1)
  SELECT count(*)::int INTO replayed FROM done;
  RETURN replayed;
END
$$;
