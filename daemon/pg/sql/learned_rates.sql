-- Rates learned from 429s (engine::Store::learned_rates), read at start-up, each with its age
-- in milliseconds (the daemon moves it back towards the configured rate by its age).
SELECT scope, key, rate_per_minute,
       (extract(epoch FROM now() - learned_at) * 1000)::bigint AS age_ms
FROM callbackd.learned_rates
