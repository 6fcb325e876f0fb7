"""Building blocks of the local Functions host (see :mod:`devserver.host`)."""
