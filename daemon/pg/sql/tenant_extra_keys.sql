-- The tenants' further WeChat Pay verification keys (a key rotation in progress), read with
-- tenants_all.sql by read_tenants() in tenants.cpp, by position.
SELECT tenant_id, key_id, key_path
FROM callbackd.tenant_wechatpay_keys
ORDER BY tenant_id, key_id
