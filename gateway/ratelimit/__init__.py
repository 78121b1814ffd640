"""Rate limits: ``middleware`` (what a request costs, per principal and policy),
``buckets`` (token buckets in process or in Redis) and ``login_backoff`` (failed logins
slow an account and a network down, never lock it)."""
