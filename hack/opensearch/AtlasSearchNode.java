// A single OpenSearch node started in-process from the server jars Maven Central serves,
// with the HTTP transport (netty4) and common analysis modules loaded from the classpath.
// Used by hack/opensearch.sh for tests and the local stack only: it is a real OpenSearch
// (real Lucene, bulk, versioning, search) without the distribution's launcher.
//
// Usage: java -cp 'lib/*' AtlasSearchNode.java HOME HTTP_PORT TRANSPORT_PORT
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

public class AtlasSearchNode {
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env) {
            super(env, List.of(Netty4Plugin.class, CommonAnalysisPlugin.class), true);
        }
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
        Node node = new EmbeddedNode(env);
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
