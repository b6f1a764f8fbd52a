"""A worker holding a message is killed with SIGKILL: the message is delivered again.

The worker's visibility timeout is an hour, so only the end of its ZooKeeper session (two
seconds after its last heartbeat) can free the message: that is what this proves.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from taskq_testing.factories import make_envelope, task_id_of
from taskq_zookeeper.transport import ZookeeperTransport

WORKER = textwrap.dedent(
    """
    import sys, time
    from taskq_zookeeper.transport import ZookeeperTransport
    transport = ZookeeperTransport(
        sys.argv[1], {"visibility_timeout": 3600, "session_timeout": 2}
    )
    transport.connect()
    got = []
    while not got:
        got = transport.fetch([sys.argv[2]], 1, 5.0)
    print("held", got[0].envelope.headers["id"], flush=True)
    time.sleep(3600)
    """
)


def test_a_killed_workers_message_is_delivered_again(zookeeper_vhost_url: str) -> None:
    queue = "killed"
    transport = ZookeeperTransport(zookeeper_vhost_url, {})
    transport.connect()
    try:
        envelope = make_envelope(queue)
        transport.publish(queue, envelope)
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, zookeeper_vhost_url, queue],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line.split() == ["held", task_id_of(envelope)]
            assert transport.fetch([queue], 1, 0.5) == [], "a held message is invisible"
        finally:
            worker.kill()
            worker.wait(timeout=30)
        got = transport.fetch([queue], 1, 60.0)
        assert [task_id_of(d) for d in got] == [task_id_of(envelope)]
        assert got[0].deliveries == 2
        assert got[0].redelivered
        transport.ack(got)
    finally:
        transport.close()
