"""The response cache: catalog reads shared by everyone of one visibility class.

``middleware`` (lookup, collapse, compute, and which tags an entry depends on),
``documents`` (which GraphQL documents are shareable and what they reach), ``store``
(Redis or in-process entries and tag versions), ``courier`` (invalidations that could not
reach Redis, relayed through the database), ``asgi`` (the ASGI pieces the cache and the
compiled lane share).
"""
