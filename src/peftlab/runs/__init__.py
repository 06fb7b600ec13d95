"""Run directories: every file name in one (``directory.RunDir``: records, locks, atomic writes) and the
training checkpoints that survive a kill (``checkpoints``)."""
