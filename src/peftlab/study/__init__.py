"""Studies: a study file (or built-in preset, ``presets/``) expanded into cells (``spec``), each cell run
as a child ``peftlab run`` with resume and sharding (``runner``), and the ``peftlab study`` command (``command``)."""
