// The trusted Java test runner that executes *inside* the sandbox (see runner.py for the Python one, and
// docs/sandbox.md, "Java"). It is compiled once per machine by toolchain.py, outside the sandbox.
//
// 1. Reads the whole job from fd 3 (nonce, sources, what to run) before any untrusted code exists: the
//    sources never touch the disk, so a program cannot read its tests (or a fix) from a file.
// 2. Compiles every source in memory with javax.tools (-proc:none: no annotation processor runs).
// 3. Defines the program's classes in one loader and the tests' classes in a child loader; neither serves
//    resources, and both give their classes a protection domain without permissions.
// 4. Installs a Policy that grants untrusted domains nothing but reading system properties, and a
//    SecurityManager: no exit/halt, no files, no sockets, no processes, no reflection past access checks,
//    no touching threads outside the untrusted thread group.
// 5. Refuses (program_untrusted) a program whose classes could decide an equals() of the tests
//    (PeftlabComparisons.java).
// 6. Runs JUnit 4 classes or a class's main(String[]) (PeftlabTestRun.java): JUnit from a trusted thread, every test (and each
//    main) in a fresh thread of that group, with a timeout. A test passes only when it returned, never
//    because JUnit reported no failure (assumption failures and empty MultipleFailureExceptions report none).
// 7. Writes nonce-stamped JSON records to fd 4, which it opened in step 1 and holds in a private field,
//    and halts (untrusted threads may still be running).
import java.io.*;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.*;
import java.util.*;
import javax.tools.*;
import org.jacoco.core.analysis.*;
import org.jacoco.core.data.*;
import org.jacoco.core.instr.Instrumenter;
import org.jacoco.core.runtime.IExecutionDataAccessorGenerator;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;

public final class PeftlabJavaRunner {
    private static final CodeSource UNTRUSTED = codeSource("file:/peftlab-untrusted/");
    static final ThreadGroup SANDBOXED = new ThreadGroup("peftlab-untrusted");
    private static OutputStream records;
    private static String nonce;
    private static final StringBuilder out = new StringBuilder();

    private static final class Job {
        String mode = "junit", coverageClass, coverageMethod;
        long timeoutMs = 3000;
        int release = 17;
        boolean programUntrusted = true;
        final Map<String, String> program = new LinkedHashMap<>(), tests = new LinkedHashMap<>();
        final Set<String> support = new HashSet<>();  // program-side files of the dataset: not the candidate's
        final List<String> run = new ArrayList<>();
    }

    public static void main(String[] args) throws Exception {
        records = new FileOutputStream(descriptor(4));
        Job job;
        try (InputStream in = new FileInputStream(descriptor(3))) {
            job = readJob(new BufferedInputStream(in));
        }
        try {
            runJob(job);
        } catch (Throwable t) {  // a failure of the runner or the toolchain, never the program's verdict
            record("fatal", "reason", oneLine(t.toString()));
        }
        flush();
        Runtime.getRuntime().halt(0);
    }

    /** fds 3 and 4 are pipes the sandbox user may not reopen through /proc: wrap the inherited descriptors
     *  (needs --add-opens java.base/java.io; untrusted code still cannot reflect past access checks). */
    private static FileDescriptor descriptor(int number) throws ReflectiveOperationException {
        FileDescriptor fd = new FileDescriptor();
        java.lang.reflect.Field field = FileDescriptor.class.getDeclaredField("fd");
        field.setAccessible(true);
        field.setInt(fd, number);
        return fd;
    }

    // ---- job input --------------------------------------------------------------------------------------

    private static Job readJob(InputStream in) throws IOException {
        Job job = new Job();
        if (!"PEFTLAB-JAVA-JOB 1".equals(line(in))) throw new IOException("not a peftlab Java job");
        for (String l = line(in); !"end".equals(l); l = line(in)) {
            String[] f = l.split(" ");
            switch (f[0]) {
                case "nonce": nonce = f[1]; break;
                case "mode": job.mode = f[1]; break;
                case "timeout_ms": job.timeoutMs = Long.parseLong(f[1]); break;
                case "release": job.release = Integer.parseInt(f[1]); break;
                case "program_untrusted": job.programUntrusted = "1".equals(f[1]); break;
                case "coverage": job.coverageClass = f[1]; job.coverageMethod = f[2]; break;
                case "run": job.run.add(f[1]); break;
                case "file": {
                    byte[] body = in.readNBytes(Integer.parseInt(f[3]));
                    ("test".equals(f[1]) ? job.tests : job.program).put(f[2], new String(body, StandardCharsets.UTF_8));
                    if ("support".equals(f[1])) job.support.add(f[2]);
                    break;
                }
                default: throw new IOException("unknown job line " + f[0]);
            }
        }
        return job;
    }

    private static String line(InputStream in) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) throw new EOFException("job ended early");
            buf.write(c);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    // ---- the run ----------------------------------------------------------------------------------------

    private static void runJob(Job job) throws Exception {
        Map<String, byte[]> programClasses = new HashMap<>(), testClasses = new HashMap<>();
        Set<String> candidateClasses = new HashSet<>();
        if (!compile(job, programClasses, testClasses, candidateClasses)) return;
        if (job.programUntrusted) {
            String cheat = PeftlabComparisons.cheat(programClasses, candidateClasses);
            if (cheat != null) {
                record("case", "index", 0, "name", "program", "status", "failed", "reason",
                       cheat + ", which could make a test's comparison true");
                record("done", "total", 1);
                return;
            }
        }
        Probes probes = null;
        byte[] focalOriginal = null;
        if (job.coverageClass != null) {
            String internal = job.coverageClass.replace('.', '/');
            focalOriginal = programClasses.get(job.coverageClass);
            if (focalOriginal == null) throw new IllegalStateException("no class " + job.coverageClass);
            probes = new Probes();
            programClasses.put(job.coverageClass, new Instrumenter(probes).instrument(focalOriginal, internal));
        }
        MemoryLoader programLoader = new MemoryLoader(programClasses, PeftlabJavaRunner.class.getClassLoader());
        MemoryLoader testLoader = new MemoryLoader(testClasses, programLoader);
        // `assert` in a test (or the program) checks, as under Maven's and Gradle's test runners (java -ea)
        programLoader.setDefaultAssertionStatus(true);
        testLoader.setDefaultAssertionStatus(true);
        if (probes != null) probes.expect(programLoader, job.coverageClass);
        List<Class<?>> toRun = new ArrayList<>();
        for (String name : job.run) toRun.add(Class.forName(name, false, testLoader));
        Policy.setPolicy(new Rules());
        System.setSecurityManager(new Guard());
        int total = "main".equals(job.mode) ? PeftlabTestRun.mains(toRun, job.timeoutMs) : PeftlabTestRun.junit(toRun, job.timeoutMs);
        if (probes != null) coverage(probes, focalOriginal, job.coverageClass, job.coverageMethod);
        record("done", "total", total);
    }

    private static boolean compile(Job job, Map<String, byte[]> programClasses, Map<String, byte[]> testClasses,
                                   Set<String> candidateClasses) {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) throw new IllegalStateException("no Java compiler in this runtime (a JRE, not a JDK)");
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        StandardJavaFileManager standard = javac.getStandardFileManager(diagnostics, null, StandardCharsets.UTF_8);
        Set<String> programFiles = new HashSet<>();
        List<JavaFileObject> units = new ArrayList<>();
        for (Map.Entry<String, String> e : job.program.entrySet()) {
            units.add(new Source(e.getKey(), e.getValue()));
            programFiles.add(e.getKey());
        }
        for (Map.Entry<String, String> e : job.tests.entrySet()) units.add(new Source(e.getKey(), e.getValue()));
        Map<String, byte[]> all = new HashMap<>();
        Map<String, String> origin = new HashMap<>();
        JavaFileManager memory = new ForwardingJavaFileManager<StandardJavaFileManager>(standard) {
            @Override
            public JavaFileObject getJavaFileForOutput(Location l, String name, JavaFileObject.Kind k, FileObject from) {
                origin.put(name, from == null ? "" : ((Source) from).path);
                return new SimpleJavaFileObject(URI.create("mem:///" + name.replace('.', '/') + ".class"), k) {
                    @Override
                    public OutputStream openOutputStream() {
                        return new ByteArrayOutputStream() {
                            @Override
                            public void close() { all.put(name, toByteArray()); }
                        };
                    }
                };
            }
        };
        List<String> options = List.of("-proc:none", "-nowarn", "-g", "-encoding", "UTF-8",
                                       "--release", String.valueOf(job.release), "-Xlint:none",
                                       "-cp", System.getProperty("java.class.path"));
        boolean ok = javac.getTask(null, memory, diagnostics, options, null, units).call();
        if (!ok) {
            Diagnostic<? extends JavaFileObject> first = diagnostics.getDiagnostics().stream()
                .filter(d -> d.getKind() == Diagnostic.Kind.ERROR).findFirst().orElse(null);
            String where = first != null && first.getSource() != null
                && !programFiles.contains(((Source) first.getSource()).path) ? "tests" : "program";
            String reason = first == null ? "javac failed" : ((first.getSource() == null ? "" :
                ((Source) first.getSource()).path + ":" + first.getLineNumber() + ": ") + first.getMessage(Locale.ROOT));
            record("compile", "ok", false, "where", where, "reason", oneLine(reason));
            return false;
        }
        for (Map.Entry<String, byte[]> e : all.entrySet()) {
            String from = origin.get(e.getKey());
            (programFiles.contains(from) ? programClasses : testClasses).put(e.getKey(), e.getValue());
            if (programFiles.contains(from) && !job.support.contains(from)) candidateClasses.add(e.getKey());
        }
        record("compile", "ok", true, "where", "", "reason", "");
        return true;
    }

    private static void coverage(Probes probes, byte[] original, String className, String method) throws IOException {
        ExecutionDataStore store = new ExecutionDataStore();
        if (probes.data != null)  // null: the focal class never ran
            store.put(new ExecutionData(probes.id, className.replace('.', '/'), probes.data.clone()));
        CoverageBuilder builder = new CoverageBuilder();
        new Analyzer(store, builder).analyzeClass(original, className);
        int lc = 0, lt = 0, bc = 0, bt = 0;
        boolean found = false;
        for (IClassCoverage c : builder.getClasses())
            for (IMethodCoverage m : c.getMethods())
                if ("*".equals(method) || m.getName().equals(method)) {
                    found = true;
                    lc += m.getLineCounter().getCoveredCount(); lt += m.getLineCounter().getTotalCount();
                    bc += m.getBranchCounter().getCoveredCount(); bt += m.getBranchCounter().getTotalCount();
                }
        record("coverage", "method_found", found, "line_covered", lc, "line_total", lt,
               "branch_covered", bc, "branch_total", bt);
    }

    // ---- confinement ------------------------------------------------------------------------------------

    /** Classes from memory, no resources (a class's bytes or its tests cannot be read back as a resource). */
    private static final class MemoryLoader extends ClassLoader {
        private final Map<String, byte[]> classes;
        private final ProtectionDomain domain = new ProtectionDomain(UNTRUSTED, readProperties());

        MemoryLoader(Map<String, byte[]> classes, ClassLoader parent) {
            super(parent);
            this.classes = classes;
        }

        @Override
        protected Class<?> findClass(String name) throws ClassNotFoundException {
            byte[] b = classes.get(name);
            if (b == null) throw new ClassNotFoundException(name);
            return defineClass(name, b, 0, b.length, domain);
        }

        @Override public URL getResource(String name) { return null; }
        @Override public InputStream getResourceAsStream(String name) { return null; }
        @Override public Enumeration<URL> getResources(String name) { return Collections.emptyEnumeration(); }
    }

    /** Untrusted classes have a fixed set of permissions (their domain never asks the policy): reading system
     *  properties, nothing else. */
    private static PermissionCollection readProperties() {
        Permissions p = new Permissions();
        p.add(new PropertyPermission("*", "read"));
        p.setReadOnly();
        return p;
    }

    /** Everything that is not untrusted (the JDK, JUnit, JaCoCo, this runner) may do anything. */
    private static final class Rules extends Policy {
        @Override
        public boolean implies(ProtectionDomain domain, Permission permission) {
            return domain == null || domain.getCodeSource() != UNTRUSTED;
        }
    }

    /** The default manager lets anyone modify threads outside the system group: here only the untrusted group. */
    private static final class Guard extends SecurityManager {
        private static final Permission THREAD = new RuntimePermission("modifyThread");
        private static final Permission GROUP = new RuntimePermission("modifyThreadGroup");

        @Override
        public void checkAccess(Thread t) {
            if (!SANDBOXED.parentOf(t.getThreadGroup() == null ? SANDBOXED.getParent() : t.getThreadGroup()))
                checkPermission(THREAD);
        }

        @Override
        public void checkAccess(ThreadGroup g) {
            if (!SANDBOXED.parentOf(g)) checkPermission(GROUP);
        }
    }

    /**
     * JaCoCo's probes for the focal class, handed only to that class: the instrumented class calls
     * {@link #probes}, which checks its caller, so a test cannot fetch the array and set every probe.
     */
    public static final class Probes implements IExecutionDataAccessorGenerator {
        private static final StackWalker WALKER = StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE);
        private static Probes active;
        private ClassLoader loader;
        private String name;
        long id;
        boolean[] data;

        void expect(ClassLoader loader, String name) {
            this.loader = loader;
            this.name = name;
            active = this;
        }

        @Override
        public int generateDataAccessor(long classid, String classname, int probecount, MethodVisitor mv) {
            mv.visitLdcInsn(classid);
            mv.visitLdcInsn(classname);
            mv.visitLdcInsn(probecount);
            mv.visitMethodInsn(Opcodes.INVOKESTATIC, "PeftlabJavaRunner$Probes", "probes", "(JLjava/lang/String;I)[Z", false);
            return 4;
        }

        public static boolean[] probes(long classid, String classname, int probecount) {
            Probes p = active;
            Class<?> caller = WALKER.getCallerClass();
            if (p == null || caller.getClassLoader() != p.loader || !caller.getName().equals(p.name))
                throw new SecurityException("coverage probes belong to the focal class");
            synchronized (p) {
                if (p.data == null) {
                    p.id = classid;
                    p.data = new boolean[probecount];
                }
                return p.data;
            }
        }
    }

    // ---- output -----------------------------------------------------------------------------------------

    static void record(String type, Object... fields) {
        out.append("{\"nonce\":\"").append(nonce).append("\",\"type\":\"").append(type).append('"');
        for (int i = 0; i < fields.length; i += 2) {
            out.append(",\"").append(fields[i]).append("\":");
            Object v = fields[i + 1];
            if (v instanceof Number || v instanceof Boolean) out.append(v);
            else json(String.valueOf(v));
        }
        out.append("}\n");
    }

    private static void json(String s) {
        out.append('"');
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') out.append('\\').append(c);
            else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
            else out.append(c);
        }
        out.append('"');
    }

    private static void flush() throws IOException {
        records.write(out.toString().getBytes(StandardCharsets.UTF_8));  // one write, after every test ended
        records.flush();
    }

    static String oneLine(String s) {
        String first = s.strip().split("\n", 2)[0];
        return first.length() > 300 ? first.substring(0, 300) + "..." : first;
    }

    private static CodeSource codeSource(String url) {
        try {
            return new CodeSource(new URL(url), (java.security.cert.Certificate[]) null);
        } catch (java.net.MalformedURLException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final class Source extends SimpleJavaFileObject {
        final String path, text;

        Source(String path, String text) {
            super(URI.create("string:///" + path), JavaFileObject.Kind.SOURCE);
            this.path = path;
            this.text = text;
        }

        @Override public CharSequence getCharContent(boolean ignoreEncodingErrors) { return text; }
    }
}
