"""taskq's built-in transports, found through the ``taskq.transports`` entry points.

- ``memory://[name]`` (:mod:`taskq.transports.memory`): a broker inside one process, for tests.
- ``sqlite://[/path]`` (:mod:`taskq.transports.sqlite`): the embedded default broker, a SQLite
  file that several worker and client processes on one machine share.

Nothing is imported here, so asking for one transport never loads the other.
"""
