-- 0013_rate_shares: one tenant sent by several instances (issue 17, docs/operations.md "Rate
-- shares").
--
-- Until now a tenant was sent by exactly one instance, so one big tenant could not use a
-- second host's source address. Its rate_per_minute is now cut into SHARES: share u of a
-- tenant with rate R and n = callbackd.rate_shares(R) shares may send R / n a minute (the
-- first R mod n shares one more), and a callbackd.tenant_leases row is now a lease on one
-- share, (tenant_id, share). An instance sends a tenant at the sum of the shares it holds; the
-- shares are leased, balanced and taken over exactly as whole tenants were (heartbeat.sql), so
-- the sum over every instance is never above R, in any 1 s or 60 s window (below), and each
-- row is still fenced by its claim token: no sub-merchant is in flight twice.
--
-- Why shares of at least 40 a minute: WeChat Pay's 1-second window is floor(R / 60 * 1.5)
-- (at least 1). With every share at 40 or more, the shares' 1-second limits add up to at most
-- the tenant's (a sum of floors is at most the floor of the sum); a share below 40 would still
-- be allowed one request a second, and n of them n a second. So a tenant below 80 a minute has
-- one share and is sent by one instance at a time, as before. At most 8 shares: more instances
-- than that add nothing to one tenant, and each share is a lease row.
--
-- Existing leases become share 0; the heartbeat offers the other shares to the instances.

ALTER TABLE callbackd.tenant_leases ADD COLUMN share smallint NOT NULL DEFAULT 0 CHECK (share >= 0);
ALTER TABLE callbackd.tenant_leases DROP CONSTRAINT tenant_leases_pkey;
ALTER TABLE callbackd.tenant_leases ADD PRIMARY KEY (tenant_id, share);

CREATE FUNCTION callbackd.rate_shares(rate_per_minute integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT GREATEST(1, LEAST(8, rate_per_minute / 40)) $$;

-- What share `share` of a tenant with `rate_per_minute` may send a minute.
CREATE FUNCTION callbackd.share_rate(rate_per_minute integer, share integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT rate_per_minute / callbackd.rate_shares(rate_per_minute)
         + CASE WHEN share < rate_per_minute % callbackd.rate_shares(rate_per_minute) THEN 1 ELSE 0 END
$$;

COMMENT ON COLUMN callbackd.tenant_leases.share IS
  'Which share of the tenant''s rate_per_minute this lease is on (0 .. callbackd.rate_shares(rate) - 1; '
  'callbackd.share_rate() says how much it sends). Several instances may hold shares of one tenant.';
COMMENT ON FUNCTION callbackd.rate_shares(integer) IS
  'How many shares a tenant''s rate is cut into: one per 40 a minute, at least 1, at most 8.';
COMMENT ON TABLE callbackd.tenant_leases IS
  'Which callbackd instance sends which share of which tenant''s rate (internal). Deleting a row '
  'makes the share free for the next instance heartbeat.';

GRANT EXECUTE ON FUNCTION callbackd.rate_shares(integer), callbackd.share_rate(integer, integer)
  TO callbackd_daemon, callbackd_operator;
