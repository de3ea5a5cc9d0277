SELECT (SELECT count(*) FROM callbackd.instances
         WHERE heartbeat_at > now() - $1::bigint * interval '1 millisecond')::int,
       (SELECT count(*) FROM callbackd.tenants)::int
