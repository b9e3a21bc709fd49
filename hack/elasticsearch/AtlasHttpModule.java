package atlas.es;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BiConsumer;
import java.util.function.Predicate;
import java.util.zip.GZIPInputStream;
import java.util.function.Supplier;

import org.apache.lucene.util.BytesRef;
import org.apache.lucene.util.SetOnce;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.action.ActionListener;
import org.elasticsearch.action.support.SubscribableListener;
import org.elasticsearch.cluster.node.DiscoveryNode;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.common.bytes.BytesReference;
import org.elasticsearch.common.bytes.ReleasableBytesReference;
import org.elasticsearch.common.component.AbstractLifecycleComponent;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.network.HandlingTimeTracker;
import org.elasticsearch.common.network.NetworkService;
import org.elasticsearch.common.recycler.Recycler;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.transport.BoundTransportAddress;
import org.elasticsearch.common.transport.TransportAddress;
import org.elasticsearch.common.util.BigArrays;
import org.elasticsearch.common.util.PageCacheRecycler;
import org.elasticsearch.common.util.concurrent.ThreadContext;
import org.elasticsearch.http.AbstractHttpServerTransport;
import org.elasticsearch.http.HttpBody;
import org.elasticsearch.http.HttpChannel;
import org.elasticsearch.http.HttpPreRequest;
import org.elasticsearch.http.HttpRequest;
import org.elasticsearch.http.HttpResponse;
import org.elasticsearch.http.HttpServerChannel;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.http.HttpTransportSettings;
import org.elasticsearch.indices.breaker.CircuitBreakerService;
import org.elasticsearch.plugins.NetworkPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.ChunkedRestResponseBodyPart;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.telemetry.tracing.Tracer;
import org.elasticsearch.threadpool.ThreadPool;
import org.elasticsearch.transport.BytesRefRecycler;
import org.elasticsearch.transport.ConnectTransportException;
import org.elasticsearch.transport.ConnectionProfile;
import org.elasticsearch.transport.Transport;
import org.elasticsearch.transport.TransportMessageListener;
import org.elasticsearch.transport.TransportStats;
import org.elasticsearch.xcontent.NamedXContentRegistry;

/**
 * The network module of a single Elasticsearch node assembled from the jars Maven Central serves
 * (whose netty4 module is not published there): an HTTP transport on the JDK's
 * com.sun.net.httpserver that hands every request to Elasticsearch's own REST layer, and a
 * node-to-node transport for a cluster of one (the node's requests to itself never leave
 * TransportService; connections to other nodes are refused).
 */
public class AtlasHttpModule extends Plugin implements NetworkPlugin, ActionPlugin {
    public static final String HTTP = "atlas-jdk-http";
    public static final String TRANSPORT = "atlas-single-node";

    private final SetOnce<ClusterService> clusterService = new SetOnce<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService.set(services.clusterService());
        return List.of();
    }

    // GET / (the distribution's rest-root module, not on Maven Central either): what the node is.
    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry namedWriteableRegistry,
            RestController restController, ClusterSettings clusterSettings, IndexScopedSettings indexScopedSettings,
            SettingsFilter settingsFilter, IndexNameExpressionResolver indexNameExpressionResolver,
            Supplier<DiscoveryNodes> nodesInCluster, Predicate<NodeFeature> clusterSupportsFeature) {
        return List.of(new BaseRestHandler() {
            @Override
            public String getName() {
                return "atlas_main_action";
            }

            @Override
            public List<Route> routes() {
                return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
            }

            @Override
            protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                return channel -> {
                    ClusterService cs = clusterService.get();
                    Build build = Build.current();
                    XContentBuilder b = channel.newBuilder();
                    b.startObject();
                    b.field("name", cs.localNode().getName());
                    b.field("cluster_name", cs.getClusterName().value());
                    b.field("cluster_uuid", cs.state().metadata().clusterUUID());
                    b.startObject("version")
                        .field("number", build.qualifiedVersion())
                        .field("build_flavor", build.flavor())
                        .field("build_type", build.type().displayName())
                        .field("build_hash", build.hash())
                        .field("build_date", build.date())
                        .field("build_snapshot", build.isSnapshot())
                        .field("lucene_version", IndexVersion.current().luceneVersion().toString())
                        .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                        .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                        .endObject();
                    b.field("tagline", "You Know, for Search");
                    b.endObject();
                    channel.sendResponse(new RestResponse(RestStatus.OK, b));
                };
            }
        });
    }

    @Override
    public Map<String, Supplier<HttpServerTransport>> getHttpTransports(Settings settings, ThreadPool threadPool, BigArrays bigArrays,
            PageCacheRecycler pageCacheRecycler, CircuitBreakerService circuitBreakerService, NamedXContentRegistry xContentRegistry,
            NetworkService networkService, HttpServerTransport.Dispatcher dispatcher,
            BiConsumer<HttpPreRequest, ThreadContext> perRequestThreadContext, ClusterSettings clusterSettings, Tracer tracer) {
        return Map.of(HTTP, () -> new JdkHttpServerTransport(settings, networkService, new BytesRefRecycler(pageCacheRecycler), threadPool,
            xContentRegistry, dispatcher, perRequestThreadContext, clusterSettings, tracer));
    }

    @Override
    public Map<String, Supplier<Transport>> getTransports(Settings settings, ThreadPool threadPool, PageCacheRecycler pageCacheRecycler,
            CircuitBreakerService circuitBreakerService, NamedWriteableRegistry namedWriteableRegistry, NetworkService networkService) {
        return Map.of(TRANSPORT, () -> new SingleNodeTransport(settings));
    }

    // ---- HTTP ----

    static final class JdkHttpServerTransport extends AbstractHttpServerTransport {
        // reads requests and writes responses (a response may wait for its next part)
        private final ExecutorService io = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "atlas-http");
            t.setDaemon(true);
            return t;
        });
        private final int maxContentLength;
        private final BiConsumer<HttpPreRequest, ThreadContext> perRequestThreadContext;

        JdkHttpServerTransport(Settings settings, NetworkService networkService, Recycler<BytesRef> recycler, ThreadPool threadPool,
                NamedXContentRegistry xContentRegistry, Dispatcher dispatcher, BiConsumer<HttpPreRequest, ThreadContext> perRequestThreadContext,
                ClusterSettings clusterSettings, Tracer tracer) {
            super(settings, networkService, recycler, threadPool, xContentRegistry, dispatcher, clusterSettings, tracer);
            this.perRequestThreadContext = perRequestThreadContext;
            maxContentLength = Math.toIntExact(Math.min(Integer.MAX_VALUE - 1,
                HttpTransportSettings.SETTING_HTTP_MAX_CONTENT_LENGTH.get(settings).getBytes()));
        }

        @Override
        protected void doStart() {
            bindServer();
        }

        @Override
        protected HttpServerChannel bind(InetSocketAddress address) throws Exception {
            HttpServer server = HttpServer.create(address, 128);
            server.setExecutor(io);
            server.createContext("/", this::handle);
            server.start();
            return new JdkServerChannel(server);
        }

        // as netty4's transport does: the node's plugins may put what they need in the request's context
        @Override
        protected void populatePerRequestThreadContext(RestRequest restRequest, ThreadContext threadContext) {
            perRequestThreadContext.accept(restRequest.getHttpRequest(), threadContext);
        }

        @Override
        protected void stopInternal() {
            io.shutdownNow();
        }

        private void handle(HttpExchange exchange) throws IOException {
            // What netty's pipeline does before Elasticsearch sees a request: inflate a gzip
            // body, and answer 413 to one longer than http.max_content_length.
            Headers headers = exchange.getRequestHeaders();
            byte[] body;
            try (InputStream raw = exchange.getRequestBody()) {
                InputStream in = raw;
                if ("gzip".equalsIgnoreCase(headers.getFirst("Content-Encoding"))) {
                    in = new GZIPInputStream(raw);
                    Headers inflated = new Headers();
                    inflated.putAll(headers);
                    headers = inflated;
                    headers.remove("Content-Encoding");
                    headers.remove("Content-Length");
                }
                body = in.readNBytes(maxContentLength + 1);
            }
            if (body.length > maxContentLength) {
                exchange.sendResponseHeaders(RestStatus.REQUEST_ENTITY_TOO_LARGE.getStatus(), -1);
                exchange.close();
                return;
            }
            JdkChannel channel = new JdkChannel(exchange, io, recycler());
            serverAcceptedChannel(channel);
            incomingRequest(new JdkRequest(exchange, headers, new BytesArray(body)), channel);
        }
    }

    static final class JdkServerChannel implements HttpServerChannel {
        private final HttpServer server;
        private final AtomicBoolean open = new AtomicBoolean(true);
        private final SubscribableListener<Void> closed = new SubscribableListener<>();

        JdkServerChannel(HttpServer server) {
            this.server = server;
        }

        @Override
        public InetSocketAddress getLocalAddress() {
            return server.getAddress();
        }

        @Override
        public void addCloseListener(ActionListener<Void> listener) {
            closed.addListener(listener);
        }

        @Override
        public boolean isOpen() {
            return open.get();
        }

        @Override
        public void close() {
            if (open.compareAndSet(true, false)) {
                server.stop(0);
                closed.onResponse(null);
            }
        }
    }

    static final class JdkRequest implements HttpRequest {
        private final HttpExchange exchange;
        private final Headers headers;
        private final BytesReference body;

        JdkRequest(HttpExchange exchange, Headers headers, BytesReference body) {
            this.exchange = exchange;
            this.headers = headers;
            this.body = body;
        }

        @Override
        public RestRequest.Method method() {
            return RestRequest.Method.valueOf(exchange.getRequestMethod());
        }

        @Override
        public String uri() {
            return exchange.getRequestURI().toString();
        }

        @Override
        public Map<String, List<String>> getHeaders() {
            return headers;
        }

        @Override
        public HttpBody body() {
            return HttpBody.fromBytesReference(body);
        }

        @Override
        public List<String> strictCookies() {
            return List.of();
        }

        @Override
        public HttpVersion protocolVersion() {
            return "HTTP/1.0".equals(exchange.getProtocol()) ? HttpVersion.HTTP_1_0 : HttpVersion.HTTP_1_1;
        }

        @Override
        public HttpRequest removeHeader(String header) {
            Headers copy = new Headers();
            copy.putAll(headers);
            copy.remove(header);
            return new JdkRequest(exchange, copy, body);
        }

        @Override
        public HttpResponse createResponse(RestStatus status, BytesReference content) {
            return new JdkResponse(status, content, null);
        }

        @Override
        public HttpResponse createResponse(RestStatus status, ChunkedRestResponseBodyPart firstBodyPart) {
            return new JdkResponse(status, null, firstBodyPart);
        }

        @Override
        public Exception getInboundException() {
            return null;
        }

        @Override
        public void release() {}
    }

    static final class JdkResponse implements HttpResponse {
        final RestStatus status;
        final BytesReference content;
        final ChunkedRestResponseBodyPart firstPart;
        final Headers headers = new Headers();

        JdkResponse(RestStatus status, BytesReference content, ChunkedRestResponseBodyPart firstPart) {
            this.status = status;
            this.content = content;
            this.firstPart = firstPart;
        }

        @Override
        public void addHeader(String name, String value) {
            headers.add(name, value);
        }

        @Override
        public boolean containsHeader(String name) {
            return headers.containsKey(name);
        }
    }

    /** One request and its response: Elasticsearch's HttpChannel is closed once the response is written. */
    static final class JdkChannel implements HttpChannel {
        private final HttpExchange exchange;
        private final ExecutorService io;
        private final Recycler<BytesRef> recycler;
        private final AtomicBoolean open = new AtomicBoolean(true);
        private final SubscribableListener<Void> closed = new SubscribableListener<>();

        JdkChannel(HttpExchange exchange, ExecutorService io, Recycler<BytesRef> recycler) {
            this.exchange = exchange;
            this.io = io;
            this.recycler = recycler;
        }

        @Override
        public void sendResponse(HttpResponse response, ActionListener<Void> listener) {
            JdkResponse r = (JdkResponse) response;
            io.execute(() -> {
                try {
                    write(r);
                    listener.onResponse(null);
                } catch (Exception e) {
                    listener.onFailure(e);
                } finally {
                    close();
                }
            });
        }

        private void write(JdkResponse r) throws Exception {
            Headers out = exchange.getResponseHeaders();
            r.headers.forEach((name, values) -> {
                // the JDK server frames the body itself
                if (name.equalsIgnoreCase("Content-Length") || name.equalsIgnoreCase("Transfer-Encoding")) {
                    return;
                }
                out.put(name, new ArrayList<>(values));
            });
            boolean head = "HEAD".equals(exchange.getRequestMethod());
            if (r.firstPart == null) {
                int length = r.content.length();
                if (head) {
                    // a HEAD answer tells the length of the body it leaves out
                    List<String> cl = r.headers.get("Content-Length");
                    if (cl != null) {
                        out.put("Content-Length", new ArrayList<>(cl));
                    }
                }
                exchange.sendResponseHeaders(r.status.getStatus(), head || length == 0 ? -1 : length);
                if (head == false && length > 0) {
                    try (OutputStream os = exchange.getResponseBody()) {
                        r.content.writeTo(os);
                    }
                }
                return;
            }
            exchange.sendResponseHeaders(r.status.getStatus(), 0);
            try (OutputStream os = exchange.getResponseBody()) {
                ChunkedRestResponseBodyPart part = r.firstPart;
                while (true) {
                    while (part.isPartComplete() == false) {
                        try (ReleasableBytesReference chunk = part.encodeChunk(1 << 16, recycler)) {
                            chunk.writeTo(os);
                        }
                    }
                    if (part.isLastPart()) {
                        break;
                    }
                    CompletableFuture<ChunkedRestResponseBodyPart> next = new CompletableFuture<>();
                    part.getNextPart(ActionListener.wrap(next::complete, next::completeExceptionally));
                    part = next.get();
                }
            }
        }

        @Override
        public InetSocketAddress getLocalAddress() {
            return exchange.getLocalAddress();
        }

        @Override
        public InetSocketAddress getRemoteAddress() {
            return exchange.getRemoteAddress();
        }

        @Override
        public void addCloseListener(ActionListener<Void> listener) {
            closed.addListener(listener);
        }

        @Override
        public boolean isOpen() {
            return open.get();
        }

        @Override
        public void close() {
            if (open.compareAndSet(true, false)) {
                exchange.close();
                closed.onResponse(null);
            }
        }
    }

    // ---- node-to-node ----

    static final class SingleNodeTransport extends AbstractLifecycleComponent implements Transport {
        private final Settings settings;
        private final ResponseHandlers responseHandlers = new ResponseHandlers();
        private final RequestHandlers requestHandlers = new RequestHandlers();
        private volatile BoundTransportAddress bound;

        SingleNodeTransport(Settings settings) {
            this.settings = settings;
        }

        @Override
        protected void doStart() {
            int port = Integer.parseInt(settings.get("transport.port", "9300"));
            TransportAddress address = new TransportAddress(InetAddress.getLoopbackAddress(), port);
            bound = new BoundTransportAddress(new TransportAddress[] { address }, address);
        }

        @Override
        protected void doStop() {}

        @Override
        protected void doClose() {}

        @Override
        public void setMessageListener(TransportMessageListener listener) {}

        @Override
        public BoundTransportAddress boundAddress() {
            return bound;
        }

        @Override
        public BoundTransportAddress boundRemoteIngressAddress() {
            return null;
        }

        @Override
        public Map<String, BoundTransportAddress> profileBoundAddresses() {
            return Map.of();
        }

        @Override
        public TransportAddress[] addressesFromString(String address) throws UnknownHostException {
            int colon = address.lastIndexOf(':');
            String host = colon < 0 ? address : address.substring(0, colon);
            int port = colon < 0 ? 9300 : Integer.parseInt(address.substring(colon + 1));
            return new TransportAddress[] { new TransportAddress(InetAddress.getByName(host), port) };
        }

        @Override
        public List<String> getDefaultSeedAddresses() {
            return List.of();
        }

        @Override
        public void openConnection(DiscoveryNode node, ConnectionProfile profile, ActionListener<Connection> listener) {
            listener.onFailure(new ConnectTransportException(node, "a cluster of one node: no connections to other nodes"));
        }

        @Override
        public TransportStats getStats() {
            return new TransportStats(0, 0, 0, 0, 0, 0, new long[HandlingTimeTracker.BUCKET_COUNT],
                new long[HandlingTimeTracker.BUCKET_COUNT], Map.of());
        }

        @Override
        public ResponseHandlers getResponseHandlers() {
            return responseHandlers;
        }

        @Override
        public RequestHandlers getRequestHandlers() {
            return requestHandlers;
        }
    }
}
