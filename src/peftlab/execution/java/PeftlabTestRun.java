// Part of the trusted Java runner (PeftlabJavaRunner.java): running JUnit 4 classes and main methods, each
// test in a thread of the untrusted group, a test passing only when that thread returned.
import java.io.*;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.*;
import java.util.*;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.tools.*;
import org.jacoco.core.analysis.*;
import org.jacoco.core.data.*;
import org.jacoco.core.instr.Instrumenter;
import org.jacoco.core.runtime.IExecutionDataAccessorGenerator;
import org.junit.runner.*;
import org.junit.runner.notification.*;
import org.junit.runners.BlockJUnit4ClassRunner;
import org.junit.runners.model.*;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;

final class PeftlabTestRun {
    private PeftlabTestRun() {}

    static int junit(List<Class<?>> classes, long timeoutMs) throws Exception {
        List<Runner> runners = new ArrayList<>();
        Set<Description> completed = Collections.synchronizedSet(new HashSet<>());
        int total = 0;
        for (Class<?> c : classes) {
            Runner r;
            try {
                r = new TimedRunner(c, timeoutMs, completed);
            } catch (InitializationError e) {  // e.g. no @Test method: JUnit's own verdict, one failing case
                r = Request.errorReport(c, e).getRunner();
            }
            runners.add(r);
            total += r.testCount();
        }
        PeftlabJavaRunner.record("plan", "total", total);
        List<Object[]> results = Collections.synchronizedList(new ArrayList<>());
        // {name, status, reason}. A test passes only if our own statement saw it return (completed), never
        // because no failure was reported: an assumption failure, or a MultipleFailureException whose list
        // is empty, reports none (JUnit would count either as not failed).
        RunListener listener = new RunListener() {
            private final Map<Description, Object[]> open = new HashMap<>();
            @Override public void testStarted(Description d) { open.put(d, new Object[]{d.getDisplayName(), null, ""}); }
            @Override public void testFailure(Failure f) {
                failed(f, f.getException() instanceof TestTimedOutException ? "timeout" : "failed", "");
            }
            @Override public void testAssumptionFailure(Failure f) { failed(f, "failed", "assumption failed: "); }
            private void failed(Failure f, String status, String prefix) {
                Object[] r = open.get(f.getDescription());
                if (r == null) {  // a class-level failure (@BeforeClass, a bad class): its tests do not run
                    r = new Object[]{f.getDescription().getDisplayName(), null, ""};
                    results.add(r);
                }
                if (r[1] == null) {
                    r[1] = status;  // set before the reason: toString() may be the program's code, and throw
                    r[2] = prefix + f.getException().getClass().getName();  // kept if toString() throws
                    r[2] = prefix + PeftlabJavaRunner.oneLine(String.valueOf(f.getException()));
                }
            }
            @Override public void testFinished(Description d) {
                Object[] r = open.remove(d);
                if (r == null) return;
                if (r[1] == null) {
                    r[1] = completed.contains(d) ? "passed" : "failed";
                    if (!completed.contains(d)) r[2] = "the test did not complete";
                }
                results.add(r);
            }
            @Override public void testIgnored(Description d) { results.add(new Object[]{d.getDisplayName(), "failed", "ignored"}); }
        };
        // JUnit itself runs in a trusted thread group (untrusted code cannot suspend or interrupt it); each
        // test runs in a thread of the untrusted group (TimedRunner).
        Thread worker = new Thread(() -> {
            RunNotifier notifier = new RunNotifier();
            notifier.addListener(listener);
            for (Runner r : runners) r.run(notifier);
        }, "peftlab-junit");
        worker.setDaemon(true);
        worker.start();
        worker.join(timeoutMs);  // the budget for every test together; a stuck test leaves the rest unfinished
        boolean stuck = worker.isAlive();
        List<Object[]> done;
        synchronized (results) {
            done = new ArrayList<>(results);  // a copy: the worker may still be running
        }
        for (int i = 0; i < total; i++) {
            Object[] r = i < done.size() ? done.get(i) : stuck ? new Object[]{"test " + (i + 1), "timeout", "not finished in time"}
                                                            : new Object[]{"test " + (i + 1), "failed", "not run"};
            PeftlabJavaRunner.record("case", "index", i, "name", r[0], "status", r[1] == null ? "failed" : r[1], "reason", r[2]);
        }
        return total;
    }

    static int mains(List<Class<?>> classes, long timeoutMs) throws Exception {
        PeftlabJavaRunner.record("plan", "total", classes.size());
        for (int i = 0; i < classes.size(); i++) {
            java.lang.reflect.Method main = classes.get(i).getMethod("main", String[].class);
            Object[] result = {"timeout", "main did not return within " + timeoutMs + " ms"};
            Runnable run = () -> {
                try {
                    main.invoke(null, (Object) new String[0]);
                    result[0] = "passed"; result[1] = "";
                } catch (java.lang.reflect.InvocationTargetException e) {
                    result[0] = "failed"; result[1] = PeftlabJavaRunner.oneLine(String.valueOf(e.getCause()));
                } catch (Throwable t) {
                    result[0] = "failed"; result[1] = PeftlabJavaRunner.oneLine(String.valueOf(t));
                }
            };
            Thread worker;
            try {
                worker = new Thread(PeftlabJavaRunner.SANDBOXED, run, "peftlab-main");
                worker.start();
            } catch (Throwable t) {  // no thread left (a thread bomb), or the group destroyed by an earlier main
                PeftlabJavaRunner.record("case", "index", i, "name", classes.get(i).getName() + ".main", "status", "failed", "reason",
                       "cannot start: " + PeftlabJavaRunner.oneLine(t.toString()));
                continue;
            }
            worker.join(timeoutMs);
            Object[] seen = worker.isAlive() ? new Object[]{"timeout", "main did not return within " + timeoutMs + " ms"}
                                             : result.clone();
            PeftlabJavaRunner.record("case", "index", i, "name", classes.get(i).getName() + ".main", "status", seen[0], "reason", seen[1]);
        }
        return classes.size();
    }

    /**
     * JUnit 4's runner, where every test (its instance, @Before, the method, @After, rules) runs in a fresh
     * thread of the untrusted group, with a timeout (the test's own, else the job's: generated tests rarely
     * declare one), and is marked completed only when that thread returned normally.
     */
    private static final class TimedRunner extends BlockJUnit4ClassRunner {
        private final long timeoutMs;
        private final Set<Description> completed;

        TimedRunner(Class<?> c, long timeoutMs, Set<Description> completed) throws InitializationError {
            super(c);
            this.timeoutMs = timeoutMs;
            this.completed = completed;
        }

        @Override
        protected Statement methodBlock(FrameworkMethod method) {
            Description description = describeChild(method);
            long declared = method.getAnnotation(org.junit.Test.class).timeout();
            long limit = declared > 0 ? declared : timeoutMs;
            return new Statement() {
                @Override
                public void evaluate() throws Throwable {
                    FutureTask<Throwable> task = new FutureTask<>(() -> {
                        try {
                            TimedRunner.super.methodBlock(method).evaluate();
                            return null;
                        } catch (Throwable t) {
                            return t;
                        }
                    });
                    Thread thread = new Thread(PeftlabJavaRunner.SANDBOXED, task, "peftlab-test");
                    thread.setDaemon(true);
                    thread.start();
                    Throwable thrown;
                    try {
                        thrown = task.get(limit, TimeUnit.MILLISECONDS);
                    } catch (TimeoutException e) {
                        throw new TestTimedOutException(limit, TimeUnit.MILLISECONDS);
                    }
                    if (thrown != null) throw thrown;
                    completed.add(description);
                }
            };
        }

        @Override
        @SuppressWarnings("deprecation")
        protected Statement withPotentialTimeout(FrameworkMethod method, Object test, Statement next) {
            return next;  // methodBlock applies the timeout, around the whole test
        }
    }
}
