"""Models: resolving and loading ``--model`` (``loading``), the bundled GGUF models (``bundled``), and where
and in which dtype they run (``devices``)."""
