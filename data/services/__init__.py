"""Services: every business rule, visibility check and error code lives here once.

Each function takes the session, then the actor, then keyword arguments; it finds only
rows the actor may see (else ``NotFound``), checks what it may do (else ``Forbidden``),
flushes and never commits.
"""
