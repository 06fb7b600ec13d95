// Part of the trusted Java runner (PeftlabJavaRunner.java): which candidate code could decide a test's equals().
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

/**
 * Refuses candidate code (read with ASM, before anything runs) that could decide a test's equals(): a
 * class that declares equals(Object) or inherits a JDK one it could steer through methods it overrides
 * (AbstractSet.equals calls containsAll), one that is a Collection or Map (ArrayList.equals and
 * AbstractSet.equals iterate the *other* collection: an empty iterator and the right size equal any
 * set), and code that names reflection, method handles, proxies, java.beans or deserialization, with
 * which a class with any equals() can be made at run time. javac writes all the bytecode, so what the
 * code can reach, it names.
 */
final class PeftlabComparisons {
private PeftlabComparisons() {}

    private static final String[] FORBIDDEN = {"java/lang/reflect/", "java/lang/invoke/", "java/beans/",
        "javax/script/", "javax/tools/", "javax/management/", "jdk/jshell/", "jdk/dynalink/",
        "java/lang/instrument/", "java/io/ObjectInputStream", "java/rmi/"};
    private static final Set<String> BOOTSTRAPS = Set.of("java/lang/invoke/LambdaMetafactory",
                                                         "java/lang/invoke/StringConcatFactory");

    static String cheat(Map<String, byte[]> classes, Set<String> candidates) {
        for (String name : new TreeSet<>(candidates)) {
            String why = inspect(classes.get(name));
            if (why == null) why = hierarchy(name.replace('.', '/'), classes, new HashSet<>());
            if (why != null) return name + " " + why;
        }
        return null;
    }

    private static String forbidden(Object reference) {
        String text = String.valueOf(reference);
        for (String prefix : FORBIDDEN)
            if (text.contains(prefix)) return prefix.replaceAll("/$", "").replace('/', '.');
        return null;
    }

    /** What the class's own bytecode declares or names that it may not, or null. */
    private static String inspect(byte[] bytes) {
        String[] why = {null};
        java.util.function.Consumer<Object> use = ref -> {
            String f = forbidden(ref instanceof org.objectweb.asm.Handle
                ? ((org.objectweb.asm.Handle) ref).getOwner() + ((org.objectweb.asm.Handle) ref).getDesc() : ref);
            if (f != null && why[0] == null) why[0] = "uses " + f;
        };
        MethodVisitor code = new MethodVisitor(Opcodes.ASM9) {
            @Override public void visitMethodInsn(int op, String owner, String name, String desc, boolean itf) {
                use.accept(owner + desc);
            }
            @Override public void visitFieldInsn(int op, String owner, String name, String desc) {
                use.accept(owner + desc);
            }
            @Override public void visitTypeInsn(int op, String type) { use.accept(type); }
            @Override public void visitMultiANewArrayInsn(String desc, int dims) { use.accept(desc); }
            @Override public void visitLdcInsn(Object value) {
                if (value instanceof org.objectweb.asm.ConstantDynamic) use.accept("java/lang/invoke/");
                else use.accept(value);
            }
            @Override
            public void visitInvokeDynamicInsn(String name, String desc, org.objectweb.asm.Handle bsm, Object... args) {
                if (!BOOTSTRAPS.contains(bsm.getOwner())) use.accept("java/lang/invoke/");
                use.accept(desc);
                for (Object arg : args) use.accept(arg);
            }
        };
        new org.objectweb.asm.ClassReader(bytes).accept(new org.objectweb.asm.ClassVisitor(Opcodes.ASM9) {
            @Override
            public void visit(int version, int access, String name, String sig, String superName, String[] ifaces) {
                use.accept(superName + String.join(",", ifaces == null ? new String[0] : ifaces));
            }
            @Override
            public MethodVisitor visitMethod(int access, String name, String desc, String sig, String[] exc) {
                if ("equals".equals(name) && "(Ljava/lang/Object;)Z".equals(desc) && why[0] == null)
                    why[0] = "declares equals(Object)";
                use.accept(desc);
                return code;
            }
        }, org.objectweb.asm.ClassReader.SKIP_DEBUG);
        return why[0];
    }

    /** Whether the class is a Collection or Map, or inherits a JDK equals() other than Object's or
     *  Enum's (final, ==); program classes are read as bytes, the rest loaded without initialising. */
    private static String hierarchy(String internal, Map<String, byte[]> classes, Set<String> seen) {
        if (!seen.add(internal)) return null;
        byte[] bytes = classes.get(internal.replace('/', '.'));
        if (bytes != null) {
            if ("declares equals(Object)".equals(inspect(bytes))) return "inherits " + internal + ".equals(Object)";
            org.objectweb.asm.ClassReader reader = new org.objectweb.asm.ClassReader(bytes);
            List<String> supers = new ArrayList<>(Arrays.asList(reader.getInterfaces()));
            if (reader.getSuperName() != null) supers.add(0, reader.getSuperName());
            for (String s : supers) {
                String why = hierarchy(s, classes, seen);
                if (why != null) return why;
            }
            return null;
        }
        Class<?> c;
        try {
            c = Class.forName(internal.replace('/', '.'), false, PeftlabJavaRunner.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            return null;  // not loadable here: the program fails to link when it runs
        }
        if (Collection.class.isAssignableFrom(c) || Map.class.isAssignableFrom(c))
            return "is a " + (Map.class.isAssignableFrom(c) ? "Map" : "Collection") + " (" + c.getName() + ")";
        if (c.isInterface()) return null;
        try {
            Class<?> owner = c.getMethod("equals", Object.class).getDeclaringClass();
            if (owner != Object.class && owner != Enum.class)
                return "inherits " + owner.getName() + ".equals(Object)";
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException(e);
        }
        return null;
    }
}
