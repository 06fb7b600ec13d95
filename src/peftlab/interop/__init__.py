"""Other harnesses' formats: samples of an execution-scored task as EvalPlus or bigcode-evaluation-harness
files, both ways (``samples``)."""
