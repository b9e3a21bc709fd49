package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
)

// snapshot is what the system looks like at one moment.
type snapshot struct {
	at        time.Time
	produced  int64 // records on the events topic
	auditRows int64
	liveItems int64 // items not deleted
	documents int64 // in the index (as of its last refresh)
	consumers []consumerView
	events    []eventView // the operator's, newest first
	scaled    map[string][2]int
	problems  []string // what could not be read
}

type consumerView struct {
	name, mode     string
	group          string
	desired, ready int32
	minReplicas    int32 // with autoscaling; 0 without
	lag            int64 // -1: unknown
	startEarliest  bool  // where the group starts without commits
	pods           int   // running pods (not terminating)
	restarts       int32
}

type eventView struct {
	at                   time.Time
	object, reason, note string
}

// caughtUp: every published event is audited, the index holds every live item and no
// consumer has lag.
func (s *snapshot) caughtUp() bool {
	if len(s.problems) > 0 || s.produced != s.auditRows || s.liveItems != s.documents {
		return false
	}
	for _, c := range s.consumers {
		if c.lag != 0 {
			return false
		}
	}
	return true
}

// settled: caught up, and the autoscaled consumers are back at their minimum.
func (s *snapshot) settled() bool {
	if !s.caughtUp() {
		return false
	}
	for _, c := range s.consumers {
		if c.minReplicas > 0 && (c.desired != c.minReplicas || c.ready != c.desired) {
			return false
		}
	}
	return true
}

func (s *snapshot) maxDesired() int32 {
	var m int32
	for _, c := range s.consumers {
		if c.minReplicas > 0 && c.desired > m {
			m = c.desired
		}
	}
	return m
}

// watcher reads the figures from their sources: Kafka, Postgres, the search server and
// the Kubernetes API.
type watcher struct {
	cfg   config
	kube  client.Client
	kafka *kgo.Client
	adm   *kadm.Client
	pg    *pgxpool.Pool
	http  *http.Client
}

func newWatcher(cfg config) (*watcher, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := atlasv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	kube, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	kafka, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(cfg.brokers, ",")...))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	pg, err := pgxpool.New(context.Background(), cfg.postgres)
	if err != nil {
		kafka.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &watcher{cfg: cfg, kube: kube, kafka: kafka, adm: kadm.NewClient(kafka), pg: pg,
		http: &http.Client{Timeout: 2 * time.Second}}, nil
}

func (w *watcher) close() {
	w.pg.Close()
	w.kafka.Close()
}

// snapshot reads every figure; a source that cannot be read is named in problems.
func (w *watcher) snapshot(parent context.Context) *snapshot {
	s := &snapshot{at: time.Now(), scaled: map[string][2]int{}}
	problem := func(what string, err error) {
		s.problems = append(s.problems, fmt.Sprintf("%s: %v", what, err))
	}
	// Kafka, Postgres, the search server, the Kubernetes API and the groups' lag have two
	// seconds each: one that is down does not hide the others.
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	budget := func() context.Context {
		ctx, cancel := context.WithTimeout(parent, 2*time.Second)
		cancels = append(cancels, cancel)
		return ctx
	}
	ends, err := w.adm.ListEndOffsets(budget(), w.cfg.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		problem("kafka", err)
	} else {
		ends.Each(func(o kadm.ListedOffset) { s.produced += o.Offset })
	}
	if err := w.pg.QueryRow(budget(), `SELECT (SELECT count(*) FROM audit_events), (SELECT count(*) FROM items WHERE deleted_at IS NULL)`).
		Scan(&s.auditRows, &s.liveItems); err != nil {
		problem("postgres", err)
	}
	if n, err := w.documents(budget()); err != nil {
		problem("search", err)
	} else {
		s.documents = n
	}
	if err := w.consumers(budget(), s); err != nil {
		problem("kubernetes", err)
	}
	lagCtx := budget()
	for i, c := range s.consumers {
		if c.group == "" {
			continue
		}
		lag, err := scaling.ReadLag(lagCtx, w.adm, c.group, w.cfg.topic, c.startEarliest)
		if err != nil {
			problem("lag of "+c.name, err)
			continue
		}
		s.consumers[i].lag = lag.Total
	}
	return s
}

// documents counts the index's documents.
func (w *watcher) documents(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.search+"/"+w.cfg.index+"/_count", nil)
	if err != nil {
		return 0, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil // the indexer creates it with its first document
	}
	var body struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("count %s: %s %v", w.cfg.index, resp.Status, err)
	}
	return body.Count, nil
}

// refreshIndex makes every indexed document countable.
func (w *watcher) refreshIndex(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.search+"/"+w.cfg.index+"/_refresh", nil)
	if err != nil {
		return
	}
	if resp, err := w.http.Do(req); err == nil {
		resp.Body.Close()
	}
}

// consumers fills in the AtlasConsumers, their pods and the operator's Events.
func (w *watcher) consumers(ctx context.Context, s *snapshot) error {
	var acs atlasv1alpha1.AtlasConsumerList
	if err := w.kube.List(ctx, &acs, client.InNamespace(w.cfg.namespace)); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := w.kube.List(ctx, &pods, client.InNamespace(w.cfg.namespace),
		client.MatchingLabels{"app.kubernetes.io/name": "atlas-consumer"}); err != nil {
		return err
	}
	for _, ac := range acs.Items {
		c := consumerView{name: ac.Name, mode: string(ac.Spec.Mode), group: ac.Status.GroupID,
			desired: ac.Status.DesiredReplicas, ready: ac.Status.ReadyReplicas, lag: -1}
		if a := ac.Spec.Autoscaling; a != nil {
			c.minReplicas = 1
			if a.MinReplicas != nil {
				c.minReplicas = max(*a.MinReplicas, 1)
			}
		}
		for _, p := range pods.Items {
			if p.Labels["app.kubernetes.io/instance"] != ac.Name || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			c.pods++
			for _, cs := range p.Status.ContainerStatuses {
				c.restarts += cs.RestartCount
			}
		}
		c.startEarliest = ac.Spec.Kafka.StartOffset != atlasv1alpha1.StartOffsetLatest
		s.consumers = append(s.consumers, c)
	}
	sort.Slice(s.consumers, func(i, j int) bool { return s.consumers[i].name < s.consumers[j].name })

	var events corev1.EventList
	if err := w.kube.List(ctx, &events, client.InNamespace(w.cfg.namespace)); err != nil {
		return err
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Kind != "AtlasConsumer" {
			continue
		}
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.LastTimestamp.Time
		}
		s.events = append(s.events, eventView{at: at, object: e.InvolvedObject.Name, reason: e.Reason, note: e.Message})
		// repeats of one Event are folded into it: its series (or legacy count) says how many
		times := 1
		if e.Series != nil && e.Series.Count > 1 {
			times = int(e.Series.Count)
		} else if e.Count > 1 {
			times = int(e.Count)
		}
		n := s.scaled[e.InvolvedObject.Name]
		switch e.Reason {
		case "ScaledUp":
			n[0] += times
		case "ScaledDown":
			n[1] += times
		}
		s.scaled[e.InvolvedObject.Name] = n
	}
	sort.Slice(s.events, func(i, j int) bool { return s.events[i].at.After(s.events[j].at) })
	return nil
}
