package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness tracks whether each dependency the consumer needs is working. The consumer
// is ready when every dependency it has reported on last reported success.
type Readiness struct {
	mu      sync.Mutex
	started bool
	failing map[string]string
}

// NewReadiness returns a readiness state that is not ready until MarkStarted.
func NewReadiness() *Readiness { return &Readiness{failing: map[string]string{}} }

// MarkStarted records that the consumer has joined its group and is processing.
func (r *Readiness) MarkStarted() {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
}

// Set records the latest outcome of a call to dependency: nil means it works.
func (r *Readiness) Set(dependency string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.failing, dependency)
		return
	}
	r.failing[dependency] = err.Error()
}

// Ready returns whether the consumer is ready and, when it is not, why: "starting" until
// the consumer reaches its brokers, then every dependency whose latest call failed (a
// consumer that is still starting names those too, such as a database it cannot reach).
func (r *Readiness) Ready() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started && len(r.failing) == 0 {
		return true, "ok"
	}
	deps := make([]string, 0, len(r.failing))
	for d := range r.failing {
		deps = append(deps, d)
	}
	sort.Strings(deps)
	var b strings.Builder
	if !r.started {
		b.WriteString("starting: not yet consuming\n")
	}
	for _, d := range deps {
		fmt.Fprintf(&b, "%s unavailable: %s\n", d, r.failing[d])
	}
	return false, strings.TrimSpace(b.String())
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr (":8080", "127.0.0.1:0") and returns a server ready to Serve.
func Listen(addr string, m *Metrics, ready *Readiness) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics and health on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(why + "\n"))
	})
	return &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context, log *slog.Logger) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics and health server stopped", "error", err)
	}
}
