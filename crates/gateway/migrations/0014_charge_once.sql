-- The key a charge was made with: a subscription's period is charged at most
-- once (a second succeeded charge with the same key is refused), whichever
-- node or retry runs it.
ALTER TABLE charges ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX charges_once ON charges (subscription_id, idempotency_key)
    WHERE status = 'succeeded' AND idempotency_key IS NOT NULL;
