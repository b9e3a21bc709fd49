package indexer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/atlas-platform/atlas-operator/consumer/observe"
	"github.com/atlas-platform/atlas-operator/internal/backoff"
)

// ClientConfig is how to reach the search server.
type ClientConfig struct {
	Addresses          []string
	Username, Password string
	APIKey             string
	// OpenSearch lets go-elasticsearch/v8 talk to OpenSearch (2.x and 3.x are tested):
	// the client refuses answers without the X-Elastic-Product header, which OpenSearch
	// does not send, so the transport adds it.
	OpenSearch bool
	// TLS, when set, is the client TLS configuration (private CA, client certificate).
	TLS *tls.Config
}

// Connect builds the search client and makes sure the index behind the alias exists
// (EnsureIndex), each attempt bounded by timeout and retried with the backoff policy
// while the server cannot be reached (the retries show like any dependency's: readiness
// naming it, atlas_consumer_retries_total, a warning), then reports the search server
// ready. It returns only when ctx ends, or with an error retrying cannot fix.
func Connect(ctx context.Context, c ClientConfig, alias string, timeout time.Duration, policy backoff.Policy,
	log *slog.Logger, m *observe.Metrics, ready *observe.Readiness) (*elasticsearch.Client, error) {
	es, err := NewClient(c)
	if err != nil {
		return nil, err
	}
	if policy == (backoff.Policy{}) {
		policy = backoff.Default
	}
	err = backoff.Retry(ctx, policy, observe.OnRetry(log, m, ready, DependencySearch), func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return EnsureIndex(ctx, es, alias)
	})
	if err != nil {
		return nil, err
	}
	ready.Set(DependencySearch, nil)
	return es, nil
}

// NewClient builds the go-elasticsearch client.
func NewClient(c ClientConfig) (*elasticsearch.Client, error) {
	cfg := elasticsearch.Config{Addresses: c.Addresses, Username: c.Username, Password: c.Password, APIKey: c.APIKey}
	var transport http.RoundTripper = http.DefaultTransport
	if c.TLS != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = c.TLS
		transport = t
	}
	if c.OpenSearch {
		transport = openSearchTransport{next: transport}
	}
	if transport != http.DefaultTransport {
		cfg.Transport = transport
	}
	es, err := elasticsearch.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("search client: %w", err)
	}
	return es, nil
}

// openSearchTransport is the transport described at ClientConfig.OpenSearch.
type openSearchTransport struct{ next http.RoundTripper }

func (p openSearchTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(r)
	if err == nil && resp.Header.Get("X-Elastic-Product") == "" {
		resp.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return resp, err
}
