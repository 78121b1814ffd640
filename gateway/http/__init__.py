"""The HTTP front door and what guards it.

``front`` (the outermost layer: request id, security headers, the access line, metrics,
errors as problem+json), ``identity`` (the principal, resolved once), ``limits`` (body,
URL and time limits), ``security`` (trusted hosts, headers), ``problems`` (RFC 9457
bodies), ``protocol`` (the HTTP server protocol: head limits).
"""
