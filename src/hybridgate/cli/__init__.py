"""The ``hybridgate`` command line: thin wrappers over the library."""
