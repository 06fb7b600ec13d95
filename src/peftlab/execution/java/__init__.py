"""Java in the sandbox: a trusted JUnit 4 runner (``PeftlabJavaRunner.java``), the toolchain that builds it
once per machine, and attested verdicts with JaCoCo coverage (docs/sandbox.md, "Java")."""

from peftlab.execution.java.harness import JavaJob, JavaVerdict, run_java, run_java_batch

__all__ = ["JavaJob", "JavaVerdict", "run_java", "run_java_batch"]
