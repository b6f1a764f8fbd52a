"""The three systems ``tools/bench redis`` and ``tools/bench amqp`` compare: one app module per
system (what its worker processes import) and a client for each (what the benchmark drives).

The modules read ``BENCH_REDIS_URL`` (results and the counter) and ``BENCH_BROKER_URL`` (the
broker, when it is not that Redis) at import, so the benchmark and the workers it starts use the
same servers.
"""
