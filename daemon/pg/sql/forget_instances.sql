DELETE FROM callbackd.instances WHERE heartbeat_at < now() - interval '1 day'
