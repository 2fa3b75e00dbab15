-- Stripe as the processor: its publishable key, its webhook signing secret
-- (sealed like the secret key in `credentials_sealed`) and its API base URL
-- when not Stripe's own (a Stripe-compatible server).
ALTER TABLE payment_settings ADD COLUMN publishable_key TEXT;
ALTER TABLE payment_settings ADD COLUMN webhook_secret_sealed BLOB;
ALTER TABLE payment_settings ADD COLUMN api_base_url TEXT;
