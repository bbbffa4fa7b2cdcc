-- order-webhooks schema, version 4: every failed attempt gets a machine-readable failure kind next
-- to its readable reason, so that failures can be counted and grouped (src/delivery/failure.ts
-- lists the kinds). Rows already there get the kind their reason's wording implies.
ALTER TABLE :SCHEMA.outbox ADD COLUMN last_error_kind text;      -- kind of the last attempt's failure
ALTER TABLE :SCHEMA.outbox_attempt ADD COLUMN error_kind text;   -- null when the receiver answered 2xx

CREATE FUNCTION :SCHEMA.failure_kind_of(reason text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN reason IS NULL THEN NULL
    WHEN reason LIKE 'http: 3%' THEN 'redirect'
    WHEN reason LIKE 'http: %' THEN 'http_status'
    WHEN reason LIKE 'timeout:%' THEN 'timeout'
    WHEN reason LIKE 'dns:%' THEN 'dns'
    WHEN reason LIKE 'connect:%' THEN 'connect'
    WHEN reason LIKE 'tls:%' THEN 'tls'
    WHEN reason LIKE 'connection closed by the receiver%' THEN 'reset'
    WHEN reason LIKE 'response:%' THEN 'body'
    ELSE 'internal'
  END
$$;
UPDATE :SCHEMA.outbox SET last_error_kind = :SCHEMA.failure_kind_of(last_error) WHERE last_error IS NOT NULL;
UPDATE :SCHEMA.outbox_attempt SET error_kind = :SCHEMA.failure_kind_of(error) WHERE error IS NOT NULL;
DROP FUNCTION :SCHEMA.failure_kind_of(text);
