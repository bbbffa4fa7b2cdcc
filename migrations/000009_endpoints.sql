-- order-webhooks schema, version 9: several receivers (`webHooks`). Every event belongs to one
-- endpoint, by name; `webHook` is the endpoint `default`, so every event already here belongs to it
-- and nothing is sent again. Order is kept per (endpoint, order): an order's events for one endpoint
-- wait only behind that endpoint's earlier events of the order, never behind another endpoint's.
-- Stop every running instance before applying it. Each step can be applied again (IF EXISTS, IF NOT
-- EXISTS, OR REPLACE), as migration 7's.

-- A constant default: PostgreSQL adds the column without rewriting the table.
ALTER TABLE :SCHEMA.outbox ADD COLUMN IF NOT EXISTS endpoint text NOT NULL DEFAULT 'default';

-- What is due now, per endpoint: each endpoint claims its own due heads, so a backlog of one never
-- sits in front of another's in the index walk.
DROP INDEX IF EXISTS :SCHEMA.outbox_due;
CREATE INDEX outbox_due ON :SCHEMA.outbox (endpoint, next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
-- An order's pending events: by order (is anything of it pending?) and per endpoint in id order
-- (its head for one endpoint).
DROP INDEX IF EXISTS :SCHEMA.outbox_order_pending;
CREATE INDEX outbox_order_pending ON :SCHEMA.outbox (order_id, endpoint, id) WHERE status = 'pending';

-- When an event leaves `pending`, the next pending event of its order for the same endpoint
-- becomes due (see migration 7 for why the look-up runs here).
CREATE OR REPLACE FUNCTION :SCHEMA.outbox_due_next() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  UPDATE :SCHEMA.outbox n SET next_attempt_at = now()
   WHERE n.id = (SELECT p.id FROM :SCHEMA.outbox p
                  WHERE p.order_id = NEW.order_id AND p.endpoint = NEW.endpoint AND p.status = 'pending'
                  ORDER BY p.id LIMIT 1)
     AND n.next_attempt_at IS NULL;
  RETURN NULL;
END
$fn$;

-- The operator views of migration 5, each with the endpoint as its last column (OR REPLACE keeps
-- the views' grants; a view may only gain columns at its end). `summary` counts per endpoint.
CREATE OR REPLACE VIEW :SCHEMA.events AS
SELECT o.event_id, o.order_id, o.event_type, o.status, o.attempts,
       o.created_at, o.next_attempt_at, o.delivered_at, o.replayed_at,
       o.last_status, o.last_error_kind, o.last_error, o.response_ms,
       :SCHEMA.attempt_in_flight(o) AS in_flight,
       o.attempts - (SELECT count(DISTINCT a.attempt) FROM :SCHEMA.outbox_attempt a WHERE a.outbox_id = o.id)::int
         - CASE WHEN :SCHEMA.attempt_in_flight(o) THEN 1 ELSE 0 END AS unrecorded_attempts,
       o.id AS outbox_id, o.body, o.endpoint
  FROM :SCHEMA.outbox o;

CREATE OR REPLACE VIEW :SCHEMA.attempts AS
SELECT o.event_id, o.order_id, o.event_type, a.attempt, a.started_at, a.duration_ms, a.http_status,
       CASE WHEN a.error IS NULL THEN 'delivered' ELSE coalesce(a.error_kind, 'failed') END AS outcome,
       a.error_kind, a.error, o.status AS event_status, o.id AS outbox_id, o.endpoint
  FROM :SCHEMA.outbox_attempt a
  JOIN :SCHEMA.outbox o ON o.id = a.outbox_id;

CREATE OR REPLACE VIEW :SCHEMA.pending AS
SELECT o.event_id, o.order_id, o.event_type, o.attempts, o.created_at, now() - o.created_at AS age,
       o.next_attempt_at, :SCHEMA.attempt_in_flight(o) AS in_flight, o.last_error_kind, o.last_error, o.endpoint
  FROM :SCHEMA.outbox o
 WHERE o.status = 'pending';

CREATE OR REPLACE VIEW :SCHEMA.failures AS
SELECT o.event_id, o.order_id, o.event_type, o.attempts, o.created_at,
       (SELECT max(a.started_at) FROM :SCHEMA.outbox_attempt a WHERE a.outbox_id = o.id) AS last_attempt_at,
       o.last_status, o.last_error_kind, o.last_error, o.endpoint
  FROM :SCHEMA.outbox o
 WHERE o.status = 'failed';

CREATE OR REPLACE VIEW :SCHEMA.summary AS
SELECT o.status, o.event_type, count(*) AS events, min(o.created_at) AS oldest, max(o.created_at) AS newest, o.endpoint
  FROM :SCHEMA.outbox o
 GROUP BY o.endpoint, o.status, o.event_type;
COMMENT ON VIEW :SCHEMA.summary IS 'order-webhooks: event counts by endpoint, status and event type';

-- Replay as in migration 5, with per-order order per (endpoint, order): a replayed event waits for a
-- later event of its order to the same endpoint that is in flight, and for a claimed change of its
-- order (which may give that endpoint an event).
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
       SET status = 'pending', delivered_at = NULL, replayed_at = now(),
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

-- The replay functions take an optional endpoint (null: every endpoint). New signatures, so the
-- old ones go first.
DROP FUNCTION IF EXISTS :SCHEMA.replay_failed(timestamptz, bigint, bigint);
DROP FUNCTION IF EXISTS :SCHEMA.replay_order(text);
DROP FUNCTION IF EXISTS :SCHEMA.replay_range(timestamptz, timestamptz, bigint, bigint);

-- Every failed event created since a time (all of them by default), of one endpoint or all.
CREATE OR REPLACE FUNCTION :SCHEMA.replay_failed(since timestamptz DEFAULT '-infinity', first_id bigint DEFAULT NULL,
                                                 last_id bigint DEFAULT NULL, endpoint text DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(
    SELECT o.id FROM :SCHEMA.outbox o
     WHERE o.status = 'failed' AND o.created_at >= since
       AND (replay_failed.endpoint IS NULL OR o.endpoint = replay_failed.endpoint)
       AND o.id BETWEEN coalesce(first_id, 0) AND coalesce(last_id, 9223372036854775807)))
$$;

-- Every event of one order that is not pending, to one endpoint or all.
CREATE OR REPLACE FUNCTION :SCHEMA.replay_order(order_id text, endpoint text DEFAULT NULL) RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(
    SELECT o.id FROM :SCHEMA.outbox o
     WHERE o.order_id = replay_order.order_id
       AND (replay_order.endpoint IS NULL OR o.endpoint = replay_order.endpoint)))
$$;

-- Every event created in [from_time, to_time), whatever its status, of one endpoint or all.
CREATE OR REPLACE FUNCTION :SCHEMA.replay_range(from_time timestamptz, to_time timestamptz, first_id bigint DEFAULT NULL,
                                                last_id bigint DEFAULT NULL, endpoint text DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(
    SELECT o.id FROM :SCHEMA.outbox o
     WHERE o.created_at >= from_time AND o.created_at < to_time
       AND (replay_range.endpoint IS NULL OR o.endpoint = replay_range.endpoint)
       AND o.id BETWEEN coalesce(first_id, 0) AND coalesce(last_id, 9223372036854775807)))
$$;
