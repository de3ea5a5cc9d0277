-- Changes to the learned rates (engine::Store::save_learned_rates), one statement.
-- $1: a JSON array of {"scope", "key", "rate"}; "rate" null forgets the row (the rate is
-- back at the configured one).
WITH input AS (
  SELECT scope, key, rate
  FROM jsonb_to_recordset($1::jsonb) AS x(scope text, key text, rate double precision)
), forgotten AS (
  DELETE FROM callbackd.learned_rates l
  USING input i
  WHERE i.rate IS NULL AND l.scope = i.scope AND l.key = i.key
)
INSERT INTO callbackd.learned_rates (scope, key, rate_per_minute, learned_at)
SELECT scope, key, rate, now() FROM input WHERE rate IS NOT NULL
ON CONFLICT (scope, key) DO UPDATE SET rate_per_minute = EXCLUDED.rate_per_minute, learned_at = now()
