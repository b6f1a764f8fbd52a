"""The three systems ``tools/bench redis`` compares: one app module per system (what its worker
processes import) and a client for each (what the benchmark drives).

The modules read ``BENCH_REDIS_URL`` at import, so the benchmark and the workers it starts use
the same Redis database.
"""
