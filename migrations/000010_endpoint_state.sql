-- order-webhooks schema, version 10: each endpoint's state (up, down, paused), shared by every
-- instance and kept across restarts, and the alerts sent about it. One row per endpoint, named as in
-- the config (`default` for webHook); an endpoint with no row is up. The decisions are made by the
-- service (src/delivery/breaker.ts); these tables hold them, so that one probe is sent for all
-- instances (whoever claims it first with a conditional UPDATE) and a restart keeps an open breaker.

CREATE TABLE IF NOT EXISTS :SCHEMA.endpoint_state (
  endpoint text PRIMARY KEY,
  -- The circuit breaker: `down` after circuitBreaker.failures unwell failures in a row.
  state text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'down')),
  -- Unwell failures (connect, timeout, reset, dns, tls, 5xx, 408, 429) since the last success.
  failures integer NOT NULL DEFAULT 0,
  opened_at timestamptz,
  -- While down: when the next probe (one real event) may go, and the interval that got it there.
  next_probe_at timestamptz,
  probe_interval_ms integer,
  -- The instance sending the probe now, until when (a dead instance's probe is taken over after).
  probe_by text,
  probe_until timestamptz,
  -- By an operator: nothing is sent while paused, whatever the breaker says.
  paused boolean NOT NULL DEFAULT false,
  paused_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT endpoint_state_down_has_probe CHECK (state = 'up' OR next_probe_at IS NOT NULL)
);

-- Each endpoint as an operator sees it: `paused`, else `down` or `up`. Every surface (status, the
-- page, /metrics) reads this view.
CREATE OR REPLACE VIEW :SCHEMA.endpoint_states AS
SELECT s.endpoint,
       CASE WHEN s.paused THEN 'paused' ELSE s.state END AS status,
       s.state AS breaker, s.failures, s.opened_at, s.next_probe_at,
       make_interval(secs => s.probe_interval_ms / 1000.0) AS probe_interval,
       s.probe_by, s.paused_at, s.updated_at
  FROM :SCHEMA.endpoint_state s;
COMMENT ON VIEW :SCHEMA.endpoint_states IS 'order-webhooks: each endpoint''s state: up, down (circuit breaker open) or paused';

-- Pauses an endpoint: nothing more is sent to it (requests already under way finish); its events
-- wait as pending. The command line and the web page call this. Returns the endpoint's status.
CREATE OR REPLACE FUNCTION :SCHEMA.pause_endpoint(name text DEFAULT 'default') RETURNS text
LANGUAGE sql VOLATILE AS $$
  INSERT INTO :SCHEMA.endpoint_state AS s (endpoint, paused, paused_at) VALUES (name, true, now())
  ON CONFLICT (endpoint) DO UPDATE SET paused = true, paused_at = coalesce(s.paused_at, now()), updated_at = now()
  RETURNING 'paused'
$$;

-- Resumes a paused endpoint. If its breaker is open, a probe may go at once rather than at the end
-- of an interval that may have grown long. Returns the endpoint's status afterwards.
CREATE OR REPLACE FUNCTION :SCHEMA.resume_endpoint(name text DEFAULT 'default') RETURNS text
LANGUAGE sql VOLATILE AS $$
  INSERT INTO :SCHEMA.endpoint_state AS s (endpoint) VALUES (name)
  ON CONFLICT (endpoint) DO UPDATE
    SET paused = false, paused_at = NULL, updated_at = now(),
        next_probe_at = CASE WHEN s.paused AND s.state = 'down' THEN least(s.next_probe_at, now()) ELSE s.next_probe_at END
  RETURNING state
$$;

-- Alerts sent to a person (`alerts` in the config): one row per kind and endpoint ('' when the
-- alert is about no endpoint). The instance whose conditional UPDATE changes the row sends the
-- message, so each start, repeat and end is sent by one instance only.
CREATE TABLE IF NOT EXISTS :SCHEMA.alert (
  kind text NOT NULL,
  endpoint text NOT NULL DEFAULT '',
  firing boolean NOT NULL DEFAULT false,
  since timestamptz,
  text text,
  sent_at timestamptz,
  PRIMARY KEY (kind, endpoint)
);

-- Attempts made as probes of an endpoint that was down and still was: they do not count against
-- the event's retries (an event does not use up its retries while its endpoint is down).
ALTER TABLE :SCHEMA.outbox ADD COLUMN IF NOT EXISTS free_attempts integer NOT NULL DEFAULT 0;
