"""taskq's built-in result backends, found through the ``taskq.backends`` entry points.

- ``memory://[name]`` (:mod:`taskq.backends.memory`): results inside one process, for tests.
- ``sqlite://[/path]`` (:mod:`taskq.backends.sqlite`): the embedded default result store, a
  SQLite file shared by every worker, pool child and client on one machine.

Both encode results with :class:`taskq.backends.codec.ResultCodec`, as other backends do.
"""
