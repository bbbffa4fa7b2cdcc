-- order-webhooks schema, version 1. `:SCHEMA` is replaced by our quoted schema name.
-- Applied in one transaction by `order-webhooks migrate`; recorded in :SCHEMA.migration.

-- The change journal: one row per relevant order change, written by the capture trigger inside the
-- order app's own transaction. It is the source of truth: rows wait here while the service is away.
-- Values are text so that no id, state or date type can make the order app's statement fail.
CREATE TABLE :SCHEMA.change (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id     text        NOT NULL,
  op           text        NOT NULL,            -- INSERT or UPDATE
  old_state    text,
  new_state    text,
  old_due_date text,
  new_due_date text,
  changed_at   timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,                     -- set when its events are in the outbox
  event_count  integer                          -- how many events it produced (0: no rule matched)
) WITH (fillfactor = 90);
CREATE INDEX change_unprocessed ON :SCHEMA.change (id) WHERE processed_at IS NULL;

-- The outbox: one row per webhook event; what operators inspect.
CREATE TABLE :SCHEMA.outbox (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- per-order delivery order
  event_id        uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE, -- X-Event-Id, stable across retries
  change_id       bigint      NOT NULL,
  order_id        text        NOT NULL,
  event_type      text        NOT NULL,
  body            text        NOT NULL,         -- the exact bytes sent (and signed)
  status          text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(), -- while an attempt runs: when its lease ends
  last_status     integer,                      -- HTTP status of the last attempt
  last_error      text,                         -- why the last attempt failed
  response_ms     integer,                      -- duration of the last attempt
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz
) WITH (fillfactor = 80);
-- What is due now: only pending rows are indexed, so the index stays small as delivered rows pile up.
CREATE INDEX outbox_due ON :SCHEMA.outbox (next_attempt_at, id) WHERE status = 'pending';
-- The earliest pending event of an order (per-order order), and operators' look-ups by order.
CREATE INDEX outbox_order_pending ON :SCHEMA.outbox (order_id, id) WHERE status = 'pending';
CREATE INDEX outbox_order ON :SCHEMA.outbox (order_id);

-- One row per delivery attempt.
CREATE TABLE :SCHEMA.outbox_attempt (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  outbox_id   bigint      NOT NULL REFERENCES :SCHEMA.outbox (id) ON DELETE CASCADE,
  event_id    uuid        NOT NULL,
  attempt     integer     NOT NULL,             -- X-Event-Attempt, from 1
  started_at  timestamptz NOT NULL,
  duration_ms integer     NOT NULL,
  http_status integer,
  error       text                              -- null when the receiver answered 2xx
);
CREATE INDEX outbox_attempt_outbox ON :SCHEMA.outbox_attempt (outbox_id);

-- Which listeners are awake and draining, one row per running service instance. The trigger sends
-- NOTIFY only when some instance listens and none is draining, because NOTIFY serialises every
-- notifying commit on one database-wide lock.
CREATE TABLE :SCHEMA.listener (
  instance        text        PRIMARY KEY,
  busy_until      timestamptz NOT NULL DEFAULT '-infinity', -- -infinity: idle, waiting for a NOTIFY
  -- Renewed each time the instance goes idle (at least once per poll interval): a stopped or crashed
  -- instance lapses, and while none listens the order app pays for no NOTIFY nobody would hear.
  listening_until timestamptz NOT NULL DEFAULT '-infinity',
  started_at      timestamptz NOT NULL DEFAULT now()
);

-- What the capture trigger was installed for (one orders table per schema of ours).
CREATE TABLE :SCHEMA.capture (
  singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  orders_table text        NOT NULL,            -- schema-qualified, quoted
  definition   text        NOT NULL,            -- the SQL that installed it
  installed_at timestamptz NOT NULL DEFAULT now()
);
