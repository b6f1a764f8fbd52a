"""The built-in formats, one module each: json (the default), pickle, yaml and msgpack.

Nothing is imported here: the registry reaches each module through its entry point the first time
the format is asked for, and yaml and msgpack import their libraries only when they encode or
decode something.
"""
