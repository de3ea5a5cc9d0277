-- Every tenant, for the daemon (engine::Store::tenants), load_tenants() and `plan`/`status`
-- (read_tenants() in tenants.cpp reads the columns by position, in this order).
-- wechatpay_key_id and wechatpay_key_path are NULL in certificate mode (migrations/0009).
SELECT tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id,
       wechatpay_key_path, rate_per_minute, mode, max_in_flight,
       to_jsonb(allowed_notify_hosts)::text AS allowed_notify_hosts, apiv3_key_path
FROM callbackd.tenants
ORDER BY tenant_id
