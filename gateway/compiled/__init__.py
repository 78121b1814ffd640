"""The compiled read path: catalog reads answered by one SQL statement (PostgreSQL).

The resolvers (GraphQL) and the services behind the REST handlers are the reference;
this path must answer exactly as they do, status, headers and bytes, or not at all. A
request becomes a plan in these steps, one module each:

1. **Shape key** (``graphql_plans``, ``rest``). What of a request decides the SQL text:
   the document and operation (REST: the route template), the actor's visibility class
   (``planner.actor_key``) and a few values (page sizes, sort, which filters are there,
   ``@skip``/``@include``, v2 ``fields``). Ids, slugs, cursors and filter values are not
   in the key, only their kind: they become the statement's bound parameters.
2. **Plan cache** (``cache``). Plans are kept by shape key in a bounded LRU per
   interface (``GraphQLPlans``, ``RestPlans`` over ``BoundedCache``), counted in
   ``/metrics``.
3. **Planner** (``planner``). On a shape's first request the planner builds the one
   statement that selects the whole response as JSON, from ``data``'s models, visibility
   predicates, sorts and cursors alone: ``planner.graph`` from a neutral selection tree,
   ``planner.rest`` from a REST read, ``planner.sql`` the pieces both use, including
   ``Bound``, the place of a parameter in a later request. Whatever it does not cover
   raises ``Unsupported``, and the reference answers.
4. **Adapters**, reached through hooks the app factory installs, so that ``resolvers``
   and ``rest`` never import this package. ``graphql.CompiledReads`` answers the
   ``resolvers.fast_reads.FastReads`` hook, asked after Strawberry has parsed and
   validated the operation: it walks the operation into the selection tree, and a read
   that ran remembers its plan. ``rest.CompiledRestReads`` answers the
   ``rest.fast_reads.FastReads`` hook the catalog handlers ask first, and remembers the
   one statement a read ran, with the handler's response function.
5. **Lane** (``lane``). Every later request of a known shape is answered by the
   innermost middleware, before FastAPI routing and Strawberry: it reads the request's
   values, binds them to the plan, runs the statement and sends the answer as the
   pipeline would have. No plan or a value the plan cannot take, and the request goes
   down the pipeline (steps 1 to 4); a root object the statement did not find, and the
   reference answers, without the statement running again.
"""
