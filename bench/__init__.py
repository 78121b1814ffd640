"""The benchmark: the gateway against a hand-written floor and a Redis ceiling.

``./dev bench`` seeds a PostgreSQL database of its own, starts the gateway (gunicorn, one
uvicorn worker, a pool of 10), the floor (``bench.floor``) and the ceiling
(``bench.ceiling``) on loopback, and runs ``wrk`` over each scenario (``bench.scenarios``).
"""
