"""Models: resolving and loading ``--model`` (``loading``), the bundled GGUF models (``bundled``), where
and in which dtype they run (``devices``), the int8 engine (``int8``) and what adapter a model carries
(``adapters``)."""
