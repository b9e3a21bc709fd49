// A single Elasticsearch 8 node started in-process from the server jars Maven Central serves.
// Maven Central has no module of the distribution (netty4 HTTP/transport, rest-root,
// analysis-common, x-pack), so the node loads one module of ours from HOME/modules/atlas-http:
// hack/elasticsearch/AtlasHttpModule.java (HTTP on the JDK's server into Elasticsearch's own REST
// layer, a transport for a cluster of one, and GET /). Security (x-pack) is absent. Used by
// hack/elasticsearch.sh for tests only: it is a real Elasticsearch (its Lucene, bulk, external
// versioning, mappings, aliases, search) without the distribution's launcher. Needs Java 17+.
//
// Usage: java -cp 'lib/*' AtlasElasticsearchNode.java HOME HTTP_PORT TRANSPORT_PORT
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

public class AtlasElasticsearchNode {
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
            // the module's HTTP server and single-node transport (AtlasHttpModule)
            .put("http.type", "atlas-jdk-http")
            .put("transport.type", "atlas-single-node")
            .put("discovery.type", "single-node")
            .put("action.auto_create_index", "true")
            .put("cluster.routing.allocation.disk.threshold_enabled", "false")
            .build();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "atlas-search-0");
        // The server is on the class path (no module layer), so no server exports to add.
        PluginsLoader plugins = PluginsLoader.createPluginsLoader(PluginsLoader.loadModulesBundles(env.modulesDir()),
            PluginsLoader.loadPluginsBundles(env.pluginsDir()), Map.of(), false);
        Node node = new Node(env, plugins);
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
        System.out.println("atlas-elasticsearch-node started");
        stopped.await();
    }
}
