-- 0012_learned_rates: what the daemon learned from 429s about WeChat Pay's limits (issue 17;
-- docs/pacing.md "Learned rates"), kept across restarts.
--
-- One row per tenant whose effective rate is below its rate_per_minute, and per source
-- address whose egress cap was lowered or learned (a limit per source IP). The daemon writes
-- a row when the rate moves by 1% or more (at most every 10 s) and deletes it once the rate
-- is back where it is configured; at start-up it resumes at each rate, moved back towards the
-- configured one by its age (all the way after an hour), so that a restart does not find the
-- limit again with a burst of 429s. Instances of one database share the rows: a tenant's limit
-- is the calling merchant's; an address's row is keyed by the address as configured ('' for
-- the kernel's choice, shared by every instance without wechatpay.source_addresses).
CREATE TABLE callbackd.learned_rates (
  scope           text NOT NULL CHECK (scope IN ('tenant', 'source_address')),
  -- The tenant_id, or the source address as wechatpay.source_addresses lists it.
  key             text NOT NULL,
  rate_per_minute double precision NOT NULL CHECK (rate_per_minute > 0),
  learned_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);

COMMENT ON TABLE callbackd.learned_rates IS
  'Rates the daemon learned from 429s (per tenant, per source address), resumed at start-up. '
  'Internal; an operator may DELETE rows to make the daemon start from the configured rates. See docs/sql.md.';

GRANT SELECT, INSERT, UPDATE, DELETE ON callbackd.learned_rates TO callbackd_daemon;
GRANT SELECT, DELETE ON callbackd.learned_rates TO callbackd_operator;
