"""The stages of a run, each reading what the previous one wrote to the run directory: ``train``,
``generate``, evaluate (in ``pipeline``, with the one stage runner), ``export`` and ``preview``; ``distributed``
says which process of a data-parallel launch this is."""
