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
// With ATLAS_SEARCH_TLS_KEYSTORE set (2.x only), the REST API serves HTTPS through OpenSearch's
// own secure Netty transport (http.type netty4-secure, SecureNetty4HttpServerTransport): the
// HttpTls plugin below gives it an SSLEngine from that PKCS12 key store (password in
// ATLAS_SEARCH_TLS_PASSWORD) and, with ATLAS_SEARCH_TLS_CLIENT_CA set, demands a client
// certificate signed by that PEM CA. OpenSearch's security plugin does this in a distribution;
// Maven Central does not serve it, and the engine is all the transport needs.
//
// Usage: java -cp 'lib/*' AtlasSearchNode.java HOME HTTP_PORT TRANSPORT_PORT
import java.io.InputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.nio.file.Files;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.Optional;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManagerFactory;
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
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SecureHttpTransportSettingsProvider;
import org.opensearch.plugins.SecureSettingsFactory;

public class AtlasSearchNode {
    // HttpTls serves the REST API over TLS (see the header). The factory and the provider are
    // dynamic proxies because the 3.x line adds abstract methods to these interfaces: this
    // launcher compiles against both lines, and a method not named here returns
    // Optional.empty() (or runs its default).
    public static class HttpTls extends Plugin {
        public HttpTls() {}

        @Override
        public Optional<SecureSettingsFactory> getSecureSettingFactory(Settings settings) {
            SecureHttpTransportSettingsProvider http = proxy(SecureHttpTransportSettingsProvider.class, (name, args) -> {
                if (name.equals("buildSecureHttpServerEngine")) {
                    SSLEngine engine = TLS_CONTEXT.createSSLEngine();
                    engine.setUseClientMode(false);
                    engine.setNeedClientAuth(System.getenv("ATLAS_SEARCH_TLS_CLIENT_CA") != null);
                    return Optional.of(engine);
                }
                return null;
            });
            return Optional.of(proxy(SecureSettingsFactory.class,
                (name, args) -> name.equals("getSecureHttpTransportSettingsProvider") ? Optional.of(http) : null));
        }
    }

    interface Answer {
        // the answer of the named method, or null for its default (or Optional.empty())
        Object of(String method, Object[] args) throws Exception;
    }

    static <T> T proxy(Class<T> type, Answer answer) {
        return type.cast(Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, (self, method, args) -> {
            switch (method.getName()) {
                case "toString": return type.getSimpleName() + "(atlas)";
                case "hashCode": return System.identityHashCode(self);
                case "equals": return self == args[0];
                default: break;
            }
            Object out = answer.of(method.getName(), args);
            if (out != null) {
                return out;
            }
            if (method.isDefault()) {
                return InvocationHandler.invokeDefault(self, method, args);
            }
            return Optional.empty();
        }));
    }

    static SSLContext TLS_CONTEXT;

    static SSLContext tlsContext(String keystore) throws Exception {
        char[] password = System.getenv().getOrDefault("ATLAS_SEARCH_TLS_PASSWORD", "").toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(Path.of(keystore))) {
            keys.load(in, password);
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, password);
        TrustManagerFactory tmf = null;
        String clientCA = System.getenv("ATLAS_SEARCH_TLS_CLIENT_CA");
        if (clientCA != null) {
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            try (InputStream in = Files.newInputStream(Path.of(clientCA))) {
                trust.setCertificateEntry("client-ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
            }
            tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf == null ? null : tmf.getTrustManagers(), null);
        return ctx;
    }

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
        Collection<Object> plugins = classpathModules();
        Settings.Builder tls = Settings.builder();
        String keystore = System.getenv("ATLAS_SEARCH_TLS_KEYSTORE");
        if (keystore != null && !keystore.isBlank()) {
            if (Version.CURRENT.major >= 3) {
                throw new IllegalArgumentException("ATLAS_SEARCH_TLS_KEYSTORE: HTTPS is wired for the 2.x line only");
            }
            TLS_CONTEXT = tlsContext(keystore);
            plugins.add(HttpTls.class);
            tls.put("http.type", "netty4-secure");
        }
        Settings settings = Settings.builder()
            .put(tls.build())
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
        Node node = constructor.newInstance(env, plugins, true);
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
