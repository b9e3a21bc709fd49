package operator_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
	"github.com/atlas-platform/atlas-operator/test/infra"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// BenchmarkOperatorCostCurve runs the real `atlas manager` binary against its own envtest
// API server at each size of ATLAS_BENCH_CONSUMERS (default 10,100,500,1000), creating that
// many AtlasConsumers at once. For each size it prints the time from an AtlasConsumer's
// creation to its Deployment's appearance (p50, p99), reconciles per second while they
// settle, write requests per AtlasConsumer, the manager's memory and CPU time, and the
// write requests of a quiet 30 s after they settled (the goal is none).
func BenchmarkOperatorCostCurve(b *testing.B) {
	// envtest and the in-process floor log through controller-runtime: warnings and errors
	// only (unset, controller-runtime prints a stack saying so)
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	sizes := []int{10, 100, 500, 1000}
	if v := os.Getenv("ATLAS_BENCH_CONSUMERS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("ATLAS_BENCH_CONSUMERS=%q: want counts, comma-separated", v)
			}
			sizes = append(sizes, n)
		}
	}
	var curve []operatorRun
	for _, n := range sizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) { curve = append(curve, operatorAt(b, n)) })
	}
	// The floor at the goal's size: the least any controller must do for a new AtlasConsumer.
	const goalSize = 500
	var floor *timedCreates
	if slices.Contains(sizes, goalSize) {
		b.Run(fmt.Sprintf("floor-%d", goalSize), func(b *testing.B) {
			f := floorAt(b, goalSize)
			floor = &f
			fmt.Printf("floor: %d AtlasConsumers created in %s (create request p99 %s), a minimal controller (watch, plain create of the Deployment, 8 at a time) had all Deployments after %s; create->Deployment p50 %s p99 %s\n",
				goalSize, f.createdIn.Round(time.Millisecond), f.createP99.Round(time.Millisecond), f.deployments.Round(time.Millisecond), f.p50.Round(time.Millisecond), f.p99.Round(time.Millisecond))
		})
	}
	fmt.Printf("\noperator cost curve (one run, same machine; kube-api-qps %s, max-concurrent-reconciles %s):\n", benchQPS(), benchConcurrency())
	fmt.Printf("  %6s %12s %12s %12s %14s %10s %10s %12s %12s %16s %12s %12s\n", "count", "p50", "p99", "reconciles/s", "writes/consumer", "RSS MiB", "CPU s", "idle writes", "settled in",
		"API server CPU s", "its cores", "machine busy")
	var rows []infra.BenchRow
	for _, r := range curve {
		fmt.Printf("  %6d %12s %12s %12.1f %14.1f %10.0f %10.1f %12.0f %12s %16.1f %12.2f %11.0f%%\n", r.count, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond),
			r.reconcilesPerSec, r.writesPerConsumer, float64(r.rss)/(1<<20), r.cpu, r.idleWrites, r.settled.Round(time.Millisecond),
			r.apiCPU, r.apiCPU/r.settled.Seconds(), 100*r.machineBusy)
		work := fmt.Sprintf("operator, %d AtlasConsumers", r.count)
		p99 := infra.BenchRow{Work: work + ": create->Deployment p99", Ours: r.p99.Seconds(), Unit: "s"}
		if r.count == goalSize {
			p99.Goal, p99.Met = "< 1 s", r.p99 < time.Second
			if floor != nil {
				p99.Other, p99.OtherName = floor.p99.Seconds(), "floor: Deployment create only"
			}
		}
		rows = append(rows, p99,
			infra.BenchRow{Work: work + ": writes once idle (30 s)", Ours: r.idleWrites, Unit: "", Goal: "0", Met: r.idleWrites == 0},
			infra.BenchRow{Work: work + ": manager RSS", Ours: float64(r.rss) / (1 << 20), Unit: "MiB"})
	}
	// Memory grows no worse than linearly: each consumer beyond the middle size costs no more
	// than each one up to it did (with a quarter of slack for the noise of a garbage collector).
	if len(curve) >= 3 {
		first, mid, last := curve[0], curve[len(curve)/2], curve[len(curve)-1]
		early := float64(mid.rss-first.rss) / float64(mid.count-first.count)
		late := float64(last.rss-mid.rss) / float64(last.count-mid.count)
		rows = append(rows, infra.BenchRow{Work: fmt.Sprintf("operator: RSS per consumer, %d->%d vs %d->%d", mid.count, last.count, first.count, mid.count),
			Ours: late / 1024, Other: early / 1024, OtherName: "earlier", Unit: "KiB", Goal: "ratio <= 1.25", Met: late <= 1.25*early || late <= 0})
	}
	infra.ReportBench(b, rows...)
}

// operatorRun is the operator's figures at one size.
type operatorRun struct {
	count                               int
	p50, p99, settled                   time.Duration
	reconcilesPerSec, writesPerConsumer float64
	rss                                 int64
	cpu, idleWrites                     float64
	// apiCPU and etcdCPU are the CPU seconds the control plane spent from the first
	// create until every status was written.
	apiCPU, etcdCPU float64
	// machineBusy is the share of all CPUs busy over that time (anything's work).
	machineBusy float64
}

// controlPlanePIDs finds env's kube-apiserver and etcd processes (envtest does not give
// their pids), to measure what the API server spends on the operator's work.
func controlPlanePIDs(b *testing.B, env *kube.Env) (apiServer, etcd int) {
	b.Helper()
	host, err := url.Parse(env.Config.Host)
	if err != nil {
		b.Fatalf("API server address %q: %v", env.Config.Host, err)
	}
	etcdURL := env.Env.ControlPlane.Etcd.URL
	if etcdURL == nil {
		b.Fatal("envtest did not say where its etcd listens")
	}
	return infra.FindProcess(b, "kube-apiserver", "--secure-port="+host.Port()),
		infra.FindProcess(b, "etcd", "--listen-client-urls="+etcdURL.String())
}

func benchQPS() string         { return cmp.Or(os.Getenv("ATLAS_BENCH_KUBE_API_QPS"), "(default)") }
func benchConcurrency() string { return cmp.Or(os.Getenv("ATLAS_BENCH_CONCURRENCY"), "(default)") }

func operatorAt(b *testing.B, count int) operatorRun {
	env := kube.Start(b)
	ctx := context.Background()
	metricsAddr, probeAddr := freeAddr(b), freeAddr(b)
	args := []string{"--metrics-bind-address", metricsAddr, "--metrics-secure=false", "--health-probe-bind-address", probeAddr, "--log-level", benchLogLevel()}
	if v := os.Getenv("ATLAS_BENCH_KUBE_API_QPS"); v != "" {
		args = append(args, "--kube-api-qps", v, "--kube-api-burst", v)
	}
	if v := os.Getenv("ATLAS_BENCH_CONCURRENCY"); v != "" {
		args = append(args, "--max-concurrent-reconciles", v)
	}
	mgr := startManagerProcess(b, env, args...)
	waitOK(b, "http://"+probeAddr+"/readyz") // caches synced, controller started
	ns := "bench"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	dsnSecret(b, env, ns, "pg", dsnValue)

	before := scrape(b, metricsAddr)
	apiServer, etcd := controlPlanePIDs(b, env)
	apiBefore, etcdBefore := infra.ProcessCPU(b, apiServer), infra.ProcessCPU(b, etcd)
	busyBefore, totalBefore := infra.MachineCPU(b)
	creator := benchClient(b, env)
	stopProfile := profileAPIServer(b, env, fmt.Sprintf("operator-%d", count))
	timed := createAndTime(b, env, creator, ns, count)
	stopProfile()
	start, createdIn, deployments, p50, p99, createP99 := timed.start, timed.createdIn, timed.deployments, timed.p50, timed.p99, timed.createP99
	// Settled: every AtlasConsumer has a status for its generation.
	settled := waitSettled(b, creator, ns, count, start)
	after := scrape(b, metricsAddr)
	apiCPU, etcdCPU := infra.ProcessCPU(b, apiServer)-apiBefore, infra.ProcessCPU(b, etcd)-etcdBefore
	busyAfter, totalAfter := infra.MachineCPU(b)
	machineBusy := (busyAfter - busyBefore) / (totalAfter - totalBefore)

	reconciles := after.counter("controller_runtime_reconcile_total", "controller", "atlasconsumer") -
		before.counter("controller_runtime_reconcile_total", "controller", "atlasconsumer")
	writes := 0.0
	for _, verb := range []string{"POST", "PATCH", "PUT", "DELETE"} {
		writes += after.counter("rest_client_requests_total", "method", verb) - before.counter("rest_client_requests_total", "method", verb)
	}
	rss, peak := infra.ProcessMemory(b, mgr.Process.Pid)
	cpu := infra.ProcessCPU(b, mgr.Process.Pid)

	// Idle: nothing changes for 30 s; the operator must write nothing.
	time.Sleep(30 * time.Second)
	idle := scrape(b, metricsAddr)
	idleWrites := 0.0
	for _, verb := range []string{"POST", "PATCH", "PUT", "DELETE"} {
		idleWrites += idle.counter("rest_client_requests_total", "method", verb) - after.counter("rest_client_requests_total", "method", verb)
	}
	// the Lease of leader election is not the operator's doing: it is off here

	b.ReportMetric(p50.Seconds()*1000, "create-to-deployment-p50-ms")
	b.ReportMetric(p99.Seconds()*1000, "create-to-deployment-p99-ms")
	b.ReportMetric(reconciles/settled.Seconds(), "reconciles/s")
	b.ReportMetric(writes/float64(count), "writes/consumer")
	b.ReportMetric(float64(rss)/(1<<20), "manager-rss-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "manager-peak-rss-MiB")
	b.ReportMetric(idleWrites, "idle-writes")
	fmt.Printf("operator: %d AtlasConsumers created in %s (create request p99 %s): all Deployments after %s, all statuses after %s; create->Deployment p50 %s p99 %s; "+
		"%.0f reconciles (%.1f/s), %.1f write requests per consumer; manager RSS %.0f MiB (peak %.0f MiB), %.1f CPU s; "+
		"API server %.1f CPU s (%.1f ms per consumer, %.2f cores until settled), etcd %.1f CPU s, machine %.0f%% busy; %.0f writes in a quiet 30 s\n",
		count, createdIn.Round(time.Millisecond), createP99.Round(time.Millisecond), deployments.Round(time.Millisecond), settled.Round(time.Millisecond), p50.Round(time.Millisecond), p99.Round(time.Millisecond),
		reconciles, reconciles/settled.Seconds(), writes/float64(count), float64(rss)/(1<<20), float64(peak)/(1<<20), cpu,
		apiCPU, apiCPU*1000/float64(count), apiCPU/settled.Seconds(), etcdCPU, 100*machineBusy, idleWrites)
	return operatorRun{count: count, p50: p50, p99: p99, settled: settled, reconcilesPerSec: reconciles / settled.Seconds(),
		writesPerConsumer: writes / float64(count), rss: rss, cpu: cpu, idleWrites: idleWrites, apiCPU: apiCPU, etcdCPU: etcdCPU, machineBusy: machineBusy}
}

// timedCreates is how long count new AtlasConsumers waited for their Deployments.
type timedCreates struct {
	start                  time.Time     // the first create
	createdIn, deployments time.Duration // from start until every create returned, until every Deployment appeared
	p50, p99               time.Duration // create -> Deployment
	// createP99 is the p99 of the create requests themselves (included in p50 and p99):
	// what the API server took to accept an AtlasConsumer, before any controller can act.
	createP99 time.Duration
}

// createAndTime creates count AtlasConsumers in ns at once (16 concurrent creators, no
// client-side rate limit) and times each one's create until its Deployment appears, as a
// watch sees it, whoever creates the Deployment.
func createAndTime(b *testing.B, env *kube.Env, creator client.Client, ns string, count int) timedCreates {
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	var calls []time.Duration // how long each create request took
	appeared := map[string]time.Time{}
	allAppeared := make(chan struct{})
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			dep, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			mu.Lock()
			appeared[dep.Name] = time.Now()
			if len(appeared) == count {
				close(allAppeared)
			}
			mu.Unlock()
		}
	}()
	// The first creates on an API server started a moment before wait for it (seen: the
	// first 16, 2 s each): one is made now, untimed, as a dry run.
	warm := auditConsumer(ns, "warm-up")
	if err := creator.Create(ctx, warm, client.DryRunAll); err != nil {
		b.Fatal(err)
	}
	// The benchmark timer is left running over the whole size (the API server's start and the
	// quiet 30 s included): a size measured in under a second would otherwise be run again,
	// with another API server, by the benchmark framework's growing b.N.
	start := time.Now()
	names := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				ac := auditConsumer(ns, name)
				t0 := time.Now()
				if err := creator.Create(ctx, ac); err != nil {
					b.Errorf("create %s: %v", name, err)
					continue
				}
				mu.Lock()
				created[name] = t0
				calls = append(calls, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	for i := range count {
		names <- fmt.Sprintf("consumer-%03d", i)
	}
	close(names)
	wg.Wait()
	createdIn := time.Since(start)
	select {
	case <-allAppeared:
	case <-time.After(10 * time.Minute):
		mu.Lock()
		n := len(appeared)
		mu.Unlock()
		b.Fatalf("only %d of %d Deployments after 10 minutes", n, count)
	}
	deployments := time.Since(start)
	var latencies []time.Duration
	mu.Lock()
	for name, t0 := range created {
		latencies = append(latencies, appeared[name].Sub(t0))
	}
	mu.Unlock()
	slices.Sort(latencies)
	slices.Sort(calls)
	return timedCreates{start: start, createdIn: createdIn, deployments: deployments,
		p50: latencies[len(latencies)/2], p99: latencies[len(latencies)*99/100], createP99: calls[len(calls)*99/100]}
}

// floorAt is the reference for the create->Deployment latency at count: on an API server of
// its own, the least any controller must do, in process: watch AtlasConsumers and, on each
// one's creation, create its Deployment (the operator's, owned by it) with a plain create,
// 8 at a time (the operator's default concurrency), without client-side rate limits, and
// nothing else (no Service, no status, no cache of Secrets). The gap between it and the
// operator is the operator's; the rest is what this API server takes for the writes.
func floorAt(b *testing.B, count int) timedCreates {
	env := kube.Start(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := "floor"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	cfg := *env.Config
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.NewWithWatch(&cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	w, err := c.Watch(ctx, &atlasv1alpha1.AtlasConsumerList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	todo := make(chan *atlasv1alpha1.AtlasConsumer, count)
	go func() {
		for ev := range w.ResultChan() {
			if ac, ok := ev.Object.(*atlasv1alpha1.AtlasConsumer); ok && ev.Type == watch.Added {
				todo <- ac
			}
		}
	}()
	for range 8 {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ac := <-todo:
					dep := workload.Deployment(ac, workload.Config{Image: testImage, Replicas: 1})
					if err := controllerutil.SetControllerReference(ac, dep, env.Scheme); err != nil {
						b.Errorf("owner of %s: %v", ac.Name, err)
						continue
					}
					if err := c.Create(ctx, dep); err != nil && ctx.Err() == nil {
						b.Errorf("create Deployment %s: %v", ac.Name, err)
					}
				}
			}
		}()
	}
	stopProfile := profileAPIServer(b, env, fmt.Sprintf("floor-%d", count))
	defer stopProfile()
	return createAndTime(b, env, benchClient(b, env), ns, count)
}

// profileAPIServer, when ATLAS_BENCH_APISERVER_PROFILE names a directory, records the API
// server's CPU profile (its /debug/pprof, on by default) over the 8 s from now, into
// <dir>/<name>.pprof: what the API server spends the operator's writes on (read it with
// `go tool pprof -top`). The returned function waits for it.
func profileAPIServer(b *testing.B, env *kube.Env, name string) (stop func()) {
	dir := os.Getenv("ATLAS_BENCH_APISERVER_PROFILE")
	if dir == "" {
		return func() {}
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "8").DoRaw(context.Background())
		if err != nil {
			b.Logf("API server profile %s: %v", name, err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pprof"), raw, 0o644); err != nil {
			b.Errorf("API server profile %s: %v", name, err)
		}
	}()
	return func() { <-done }
}

// benchClient is a client without client-side rate limiting, so creating the 500 is
// not what is measured.
func benchClient(b *testing.B, env *kube.Env) client.Client {
	cfg := *env.Config
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(&cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// waitSettled waits until every AtlasConsumer of ns reports a status for its generation
// and returns the time since start.
func waitSettled(b *testing.B, c client.Client, ns string, count int, start time.Time) time.Duration {
	deadline := time.Now().Add(settleTimeout())
	for time.Now().Before(deadline) {
		var list atlasv1alpha1.AtlasConsumerList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		done := 0
		for _, ac := range list.Items {
			if ac.Status.ObservedGeneration == ac.Generation && len(ac.Status.Conditions) > 0 {
				done++
			}
		}
		if done == count {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var list atlasv1alpha1.AtlasConsumerList
	_ = c.List(context.Background(), &list, client.InNamespace(ns))
	for _, ac := range list.Items {
		if ac.Status.ObservedGeneration != ac.Generation || len(ac.Status.Conditions) == 0 {
			b.Fatalf("not every AtlasConsumer has a status after 10 minutes; %s (generation %d) has %+v", ac.Name, ac.Generation, ac.Status)
		}
	}
	b.Fatalf("not every AtlasConsumer has a status after 10 minutes")
	return 0
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitOK(b *testing.B, url string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s did not answer 200 within 30s", url)
}

// metricSamples is one scrape of a Prometheus endpoint, by metric name.
type metricSamples map[string]model.Vector

func scrape(b *testing.B, addr string) metricSamples {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	dec := expfmt.SampleDecoder{Dec: expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeTextPlain)), Opts: &expfmt.DecodeOptions{Timestamp: model.Now()}}
	out := metricSamples{}
	for {
		var v model.Vector
		if err := dec.Decode(&v); err != nil {
			break
		}
		for _, s := range v {
			name := string(s.Metric[model.MetricNameLabel])
			out[name] = append(out[name], s)
		}
	}
	return out
}

// counter sums the samples of a metric whose label has the value.
func (m metricSamples) counter(name, label, value string) float64 {
	var sum float64
	for _, s := range m[name] {
		if string(s.Metric[model.LabelName(label)]) == value {
			sum += float64(s.Value)
		}
	}
	return sum
}

// benchLogLevel is the manager's log level: ATLAS_BENCH_LOG_LEVEL, or warn.
func benchLogLevel() string {
	if v := os.Getenv("ATLAS_BENCH_LOG_LEVEL"); v != "" {
		return v
	}
	return "warn"
}

func settleTimeout() time.Duration {
	if v, err := time.ParseDuration(os.Getenv("ATLAS_BENCH_SETTLE_TIMEOUT")); err == nil {
		return v
	}
	return 10 * time.Minute
}
