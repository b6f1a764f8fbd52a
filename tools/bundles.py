"""The extra names the meta-package may offer: Celery's bundles, plus taskq's own additions.

Users move from `pip install 'celery[redis,s3]'` to `pip install 'taskq[redis,s3]'`, so the
meta-package's extras reuse Celery's bundle names; an extra outside this list is a typo or a
name nobody coming from Celery would guess.
"""

from __future__ import annotations

CELERY_BUNDLES = (
    "auth",
    "msgpack",
    "yaml",
    "eventlet",
    "gevent",
    "amqp",
    "redis",
    "sqs",
    "tblib",
    "memcache",
    "pymemcache",
    "cassandra",
    "azureblockblob",
    "s3",
    "gcs",
    "couchbase",
    "arangodb",
    "elasticsearch",
    "riak",
    "cosmosdbsql",
    "zookeeper",
    "sqlalchemy",
    "pyro",
    "slmq",
    "consul",
    "django",
    "gcpubsub",
    "brotli",
    "zstd",
    "dynamodb",
    "mongodb",
    "solar",
    "pydantic",
)
"""Celery's bundle names (`amqp` included: Celery installs RabbitMQ support by default)."""

TASKQ_ADDITIONS = ("encryption",)
"""Extras taskq offers that Celery has no bundle for."""

ALLOWED_EXTRAS = frozenset(CELERY_BUNDLES + TASKQ_ADDITIONS)
