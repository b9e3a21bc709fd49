// A single OpenSearch node (2.x or 3.x) started in-process from the server jars Maven Central
// serves, with the HTTP transport (netty4) and common analysis modules loaded from the classpath.
// Used by hack/opensearch.sh for tests and the local stack only: it is a real OpenSearch (real
// Lucene, bulk, versioning, search) without the distribution's launcher.
//
// The two lines name the modules differently (Netty4Plugin/CommonAnalysisPlugin in 2.x,
// Netty4ModulePlugin/CommonAnalysisModulePlugin in 3.x) and Node's constructor for classpath
// plugins takes plugin classes in 2.x but PluginInfo descriptions in 3.x, so this one launcher
// finds both by reflection instead of being compiled against one line (a launcher per line
// would repeat the rest). Needs Java 17 for 2.x, 21 for 3.x.
//
// Usage: java -cp 'lib/*' AtlasSearchNode.java HOME HTTP_PORT TRANSPORT_PORT
import java.lang.reflect.Constructor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.Version;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;

public class AtlasSearchNode {
    // the first of the names that this line's jars define
    static Class<?> firstClass(String... names) throws ClassNotFoundException {
        for (String name : names) {
            try {
                return Class.forName(name);
            } catch (ClassNotFoundException e) {
                // the other line's name
            }
        }
        throw new ClassNotFoundException(String.join(" or ", names));
    }

    // The classpath modules, as this line's Node constructor takes them: the classes (2.x), or
    // PluginInfo descriptions of them (3.x, as its test framework's MockNode builds them).
    static Collection<Object> classpathModules() throws Exception {
        List<Class<?>> modules = List.of(
            firstClass("org.opensearch.transport.Netty4ModulePlugin", "org.opensearch.transport.Netty4Plugin"),
            firstClass("org.opensearch.analysis.common.CommonAnalysisModulePlugin", "org.opensearch.analysis.common.CommonAnalysisPlugin"));
        List<Object> out = new ArrayList<>();
        if (Version.CURRENT.major < 3) {
            out.addAll(modules);
            return out;
        }
        Class<?> info = Class.forName("org.opensearch.plugins.PluginInfo");
        Constructor<?> c = info.getConstructor(String.class, String.class, String.class, Version.class, String.class,
            String.class, String.class, List.class, boolean.class);
        for (Class<?> m : modules) {
            out.add(c.newInstance(m.getName(), "classpath plugin", "NA", Version.CURRENT,
                Runtime.version().feature() + "", m.getName(), null, List.of(), false));
        }
        return out;
    }

    static List<String> bindHosts() {
        String nodeHost = System.getenv("ATLAS_NODE_HOST_IP");
        if (nodeHost == null || nodeHost.isBlank() || nodeHost.equals("127.0.0.1")) {
            return List.of("127.0.0.1");
        }
        return List.of("127.0.0.1", nodeHost);
    }

    public static void main(String[] args) throws Exception {
        Path home = Path.of(args[0]).toAbsolutePath();
        Settings settings = Settings.builder()
            .put("cluster.name", "atlas-test")
            .put("node.name", "atlas-search-0")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            // 127.0.0.1, and ATLAS_NODE_HOST_IP when set (hack/node.sh prints it) so the
            // local node's pods reach the server too.
            .putList("network.bind_host", bindHosts())
            .put("network.publish_host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            .put("discovery.type", "single-node")
            .put("action.auto_create_index", "true")
            .put("cluster.routing.allocation.disk.threshold_enabled", "false")
            .build();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "atlas-search-0");
        // Node(Environment, Collection<classpath plugins>, boolean forbidPrivateIndexSettings)
        // is protected: the public ones read plugins from the distribution's directories only.
        Constructor<Node> constructor = Node.class.getDeclaredConstructor(Environment.class, Collection.class, boolean.class);
        constructor.setAccessible(true);
        Node node = constructor.newInstance(env, classpathModules(), true);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }));
        node.start();
        System.out.println("atlas-search-node started");
        stopped.await();
    }
}
