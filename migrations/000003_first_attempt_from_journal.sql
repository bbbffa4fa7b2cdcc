-- order-webhooks schema, version 3: a change's first attempt is sent straight from the journal.
-- The service claims journal rows with a lease, as it claims outbox rows, sends the change's event
-- at once, and writes the event's outbox row together with that attempt's result, in the statement
-- that deletes the change: one row written per event instead of a row inserted, claimed and
-- updated. A change that must wait (its order has an event pending, or it has two events) is moved
-- to the outbox unsent, as before.
ALTER TABLE :SCHEMA.change
  ADD COLUMN attempts integer NOT NULL DEFAULT 0,  -- claims so far: the first attempt's X-Event-Attempt
  ADD COLUMN claimed_until timestamptz;            -- while claimed: when the claim's lease ends
-- Room on each page for the claim's new row version, so that the claim is a HOT update (no index
-- entry). The journal is short-lived, so the space costs nothing.
ALTER TABLE :SCHEMA.change SET (fillfactor = 50);
