package indexer

import (
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8"
)

// ClientConfig is how to reach the search server.
type ClientConfig struct {
	Addresses          []string
	Username, Password string
	APIKey             string
	// OpenSearch lets go-elasticsearch/v8 talk to OpenSearch, the development stand-in:
	// the client refuses answers without the X-Elastic-Product header, which OpenSearch
	// does not send, so the transport adds it.
	OpenSearch bool
}

// NewClient builds the go-elasticsearch client.
func NewClient(c ClientConfig) (*elasticsearch.Client, error) {
	cfg := elasticsearch.Config{Addresses: c.Addresses, Username: c.Username, Password: c.Password, APIKey: c.APIKey}
	if c.OpenSearch {
		cfg.Transport = openSearchTransport{next: http.DefaultTransport}
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
