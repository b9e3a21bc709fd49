package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestOAuthBearerOnARealBroker runs the audit consumer against a real Kafka broker whose
// only client listener is SASL OAUTHBEARER, validated by Kafka's unsecured-JWT validator
// (expiry, and the scope atlas.events). A client without SASL and a token without the scope
// are refused; a token from a file, and tokens of the OAuth 2.0 client credentials grant,
// consume every event.
func TestOAuthBearerOnARealBroker(t *testing.T) {
	t.Parallel()
	broker := infra.StartKafka(t, "ATLAS_KAFKA_SASL=OAUTHBEARER")
	brokers := []string{broker.Addr}
	good := infra.UnsecuredJWT("atlas-test", infra.OAuthScope, time.Hour)
	admin := infra.OAuthKafkaClient(t, brokers, good)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	plain, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := kadm.NewClient(plain).ListTopics(ctx); err == nil {
		t.Fatal("a client without SASL listed the topics of the OAUTHBEARER broker")
	}
	noScope := infra.OAuthKafkaClient(t, brokers, infra.UnsecuredJWT("atlas-test", "other", time.Hour))
	if _, err := kadm.NewClient(noScope).ListTopics(ctx); err == nil || !strings.Contains(err.Error(), "SASL") {
		t.Fatalf("a token without the scope: %v, want a SASL authentication failure", err)
	} else {
		t.Logf("token without the scope refused: %v", err)
	}

	s := &setup{brokers: brokers, topic: infra.UniqueName(t, "t", 200), dsn: infra.NewDatabase(t)}
	s.dlq = names.DeadLetterTopicFor(s.topic)
	s.pool = newPool(t, s.dsn)
	infra.CreateTopicsWith(t, admin, 2, s.topic, s.dlq)
	envs := generate(t, 1803, 200)
	s.produceWith(t, admin, envs)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(infra.UnsecuredJWT("atlas-audit", "other", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	oauth := []string{"--" + names.FlagKafkaSASLMechanism, kafkaconn.SASLOAuthBearer}
	// a token without the scope: the consumer stays unready and says why
	c := s.startConsumer(t, "token-file", "audit-token", append(oauth, "--"+names.FlagKafkaSASLOAuthTokenFile, tokenFile)...)
	waitLog(t, c, 30*time.Second, "SASL_AUTHENTICATION_FAILED", "insufficient_scope")
	if n := s.rowCount(t); n != 0 {
		t.Fatalf("%d rows written with a refused token", n)
	}
	// the file is read again at every authentication: a fixed token is picked up
	if err := os.WriteFile(tokenFile, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	s.waitRows(t, len(envs), 90*time.Second, c)
	s.assertExactly(t, envs)
	c.stop()

	// the client credentials grant: a token endpoint (test glue standing in for the identity
	// provider, which cannot run here) issues the tokens Kafka validates
	var issued atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "atlas-audit" || secret != "s3cret" || r.FormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600,
			"access_token": infra.UnsecuredJWT(id, r.FormValue("scope"), time.Hour)})
	}))
	defer idp.Close()
	more := generate(t, 1804, 100)
	s.produceWith(t, admin, more)
	grant := s.startConsumer(t, "client-credentials", "audit-token", append(oauth,
		"--"+names.FlagKafkaSASLOAuthTokenURL, idp.URL, "--"+names.FlagKafkaSASLOAuthClientID, "atlas-audit",
		"--"+names.FlagKafkaSASLOAuthScopes, infra.OAuthScope)...)
	grant.env = append(grant.env, names.EnvName(names.FlagKafkaSASLOAuthClientSecret)+"=s3cret")
	grant.kill()
	grant.restart()
	s.waitRows(t, len(envs)+len(more), 90*time.Second, grant)
	s.assertExactly(t, append(envs, more...))
	if issued.Load() == 0 {
		t.Fatal("the token endpoint issued no token")
	}
	t.Logf("token endpoint issued %d tokens", issued.Load())
}

// waitLog waits until the process log holds every one of want.
func waitLog(t testing.TB, p *consumerProc, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tail := p.tail()
		missing := ""
		for _, w := range want {
			if !strings.Contains(tail, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(errors.New(p.name + ": the log never said " + missing + "\n" + tail))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
