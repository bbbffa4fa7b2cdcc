-- order-webhooks schema, version 5: what operators ask, as views and functions to use from psql.
-- The command line (`order-webhooks status`, `outbox`, `replay`) reads and calls these same objects,
-- so psql and the commands always agree. docs/operations.md has example queries.

-- When an operator last sent an event again (null: never replayed).
ALTER TABLE :SCHEMA.outbox ADD COLUMN replayed_at timestamptz;

-- An attempt is "in flight" while its event is pending, claimed (attempts counts the claim), its
-- lease has not ended and its result is not recorded yet. Once the lease ends with no result, the
-- instance that made it stopped or died: the attempt shows as one without a result.
CREATE FUNCTION :SCHEMA.attempt_in_flight(o :SCHEMA.outbox) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT o.status = 'pending' AND o.attempts > 0 AND o.next_attempt_at > now()
     AND NOT EXISTS (SELECT 1 FROM :SCHEMA.outbox_attempt a WHERE a.outbox_id = o.id AND a.attempt = o.attempts)
$$;

-- Every event with its status, attempts and last failure. `unrecorded_attempts` counts attempts that
-- were made (X-Event-Attempt was used) but left no result, because their instance stopped or died.
CREATE VIEW :SCHEMA.events AS
SELECT o.event_id, o.order_id, o.event_type, o.status, o.attempts,
       o.created_at, o.next_attempt_at, o.delivered_at, o.replayed_at,
       o.last_status, o.last_error_kind, o.last_error, o.response_ms,
       :SCHEMA.attempt_in_flight(o) AS in_flight,
       o.attempts - (SELECT count(DISTINCT a.attempt) FROM :SCHEMA.outbox_attempt a WHERE a.outbox_id = o.id)::int
         - CASE WHEN :SCHEMA.attempt_in_flight(o) THEN 1 ELSE 0 END AS unrecorded_attempts,
       o.id AS outbox_id, o.body
  FROM :SCHEMA.outbox o;
COMMENT ON VIEW :SCHEMA.events IS 'order-webhooks: every event, its status, attempts and last failure';

-- Every attempt, with the event it belongs to. `outcome` is delivered (2xx) or the failure kind.
CREATE VIEW :SCHEMA.attempts AS
SELECT o.event_id, o.order_id, o.event_type, a.attempt, a.started_at, a.duration_ms, a.http_status,
       CASE WHEN a.error IS NULL THEN 'delivered' ELSE coalesce(a.error_kind, 'failed') END AS outcome,
       a.error_kind, a.error, o.status AS event_status, o.id AS outbox_id
  FROM :SCHEMA.outbox_attempt a
  JOIN :SCHEMA.outbox o ON o.id = a.outbox_id;
COMMENT ON VIEW :SCHEMA.attempts IS 'order-webhooks: every delivery attempt, joined to its event';

-- Events still to deliver, oldest first, with how long they have waited.
CREATE VIEW :SCHEMA.pending AS
SELECT o.event_id, o.order_id, o.event_type, o.attempts, o.created_at, now() - o.created_at AS age,
       o.next_attempt_at, :SCHEMA.attempt_in_flight(o) AS in_flight, o.last_error_kind, o.last_error
  FROM :SCHEMA.outbox o
 WHERE o.status = 'pending';
COMMENT ON VIEW :SCHEMA.pending IS 'order-webhooks: events still to deliver, with their age';

-- Events given up after every retry, with why the last attempt failed.
CREATE VIEW :SCHEMA.failures AS
SELECT o.event_id, o.order_id, o.event_type, o.attempts, o.created_at,
       (SELECT max(a.started_at) FROM :SCHEMA.outbox_attempt a WHERE a.outbox_id = o.id) AS last_attempt_at,
       o.last_status, o.last_error_kind, o.last_error
  FROM :SCHEMA.outbox o
 WHERE o.status = 'failed';
COMMENT ON VIEW :SCHEMA.failures IS 'order-webhooks: events given up, with the last failure';

-- How many events there are by status and event type, and the oldest and newest of each.
CREATE VIEW :SCHEMA.summary AS
SELECT o.status, o.event_type, count(*) AS events, min(o.created_at) AS oldest, max(o.created_at) AS newest
  FROM :SCHEMA.outbox o
 GROUP BY o.status, o.event_type;
COMMENT ON VIEW :SCHEMA.summary IS 'order-webhooks: event counts by status and event type';

-- Sends events again: the one implementation behind every replay_* function and `order-webhooks
-- replay`. Each event goes back to pending under its own event id and outbox id, with its attempt
-- count kept (the next attempt's X-Event-Attempt follows the last). Events already pending are left
-- as they are. Returns how many went back to pending.
--
-- Per-order order: the service only claims an order's earliest pending event (by outbox id), so a
-- replayed event goes out before its order's later pending events, as it did the first time. One
-- case needs care: a later event of the same order may be in flight right now (claimed from the
-- outbox or from the journal). Were the replayed event due at once, both would be on the wire
-- together and could arrive in either order. So it is due when the last such claim's lease ends
-- (at most webHook.leaseTimeout from now), and at once otherwise. The order's pending events are
-- locked first and leases read by the next statement, so a claim that committed meanwhile is seen.
CREATE FUNCTION :SCHEMA.replay_outbox(ids bigint[]) RETURNS integer
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
    SELECT o.id, o.order_id FROM :SCHEMA.outbox o
     WHERE o.id = ANY(ids) AND o.status <> 'pending'
       FOR UPDATE),
  outbox_busy AS (
    SELECT q.order_id, max(q.next_attempt_at) AS until
      FROM :SCHEMA.outbox q
     WHERE q.status = 'pending' AND q.order_id IN (SELECT order_id FROM picked) AND :SCHEMA.attempt_in_flight(q)
     GROUP BY q.order_id),
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
      LEFT JOIN outbox_busy ob ON ob.order_id = p.order_id
      LEFT JOIN journal_busy jb ON jb.order_id = p.order_id
     WHERE o.id = p.id
    RETURNING 1)
  SELECT count(*)::int INTO replayed FROM done;
  RETURN replayed;
END
$$;

-- The replay functions for operators. `first_id` and `last_id` (optional) limit them to a window of
-- outbox ids, so that a large replay can run in batches, each in a short transaction.

-- One event, by its X-Event-Id. Returns 1, or 0 when it is pending already (or unknown).
CREATE FUNCTION :SCHEMA.replay_event(event_id uuid) RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(SELECT o.id FROM :SCHEMA.outbox o WHERE o.event_id = replay_event.event_id))
$$;

-- Every failed event created since a time (all of them by default).
CREATE FUNCTION :SCHEMA.replay_failed(since timestamptz DEFAULT '-infinity', first_id bigint DEFAULT NULL, last_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(
    SELECT o.id FROM :SCHEMA.outbox o
     WHERE o.status = 'failed' AND o.created_at >= since
       AND o.id BETWEEN coalesce(first_id, 0) AND coalesce(last_id, 9223372036854775807)))
$$;

-- Every event of one order that is not pending (delivered or failed): its history is sent again.
CREATE FUNCTION :SCHEMA.replay_order(order_id text) RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(SELECT o.id FROM :SCHEMA.outbox o WHERE o.order_id = replay_order.order_id))
$$;

-- Every event created in [from_time, to_time), whatever its status (a receiver that lost them).
CREATE FUNCTION :SCHEMA.replay_range(from_time timestamptz, to_time timestamptz, first_id bigint DEFAULT NULL, last_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
  SELECT :SCHEMA.replay_outbox(ARRAY(
    SELECT o.id FROM :SCHEMA.outbox o
     WHERE o.created_at >= from_time AND o.created_at < to_time
       AND o.id BETWEEN coalesce(first_id, 0) AND coalesce(last_id, 9223372036854775807)))
$$;
