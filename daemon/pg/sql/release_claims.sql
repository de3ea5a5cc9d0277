UPDATE callbackd.pending_work SET claimed_by = NULL, claim_token = NULL, lease_until = NULL
WHERE claim_token = ANY ($1::bigint[])
