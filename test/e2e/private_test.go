package e2e_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/controllers"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestIndexerPodsUseAPrivateCAAndOAuth applies config/samples' indexer-private: its pods
// reach a real Kafka broker that only speaks SASL OAUTHBEARER with a token from a Secret, and
// a real OpenSearch serving HTTPS with a certificate of a self-signed CA (from a ConfigMap)
// that demands a client certificate (from a Secret). The operator reads the lag with the
// same token. Turning verification off instead is applied, and recorded as a Warning event.
func TestIndexerPodsUseAPrivateCAAndOAuth(t *testing.T) {
	s := newSystem(t)
	ctx := context.Background()
	search := infra.StartTLSOpenSearch(t, s.hostIP)
	broker := infra.StartKafka(t, "ATLAS_KAFKA_SASL=OAUTHBEARER", "ATLAS_NODE_HOST_IP="+s.hostIP)
	brokers := []string{broker.Addr}
	token := infra.UnsecuredJWT("atlas-indexer", infra.OAuthScope, 2*time.Hour)
	admin := infra.OAuthKafkaClient(t, brokers, token)
	// the system's topic names, on the private broker
	infra.CreateTopicsWith(t, admin, partitions, s.topic)
	infra.CreateTopicsWith(t, admin, 1, s.topic+".dlq")

	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "atlas-kafka-token"}, StringData: map[string]string{"token": token}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "atlas-search-ca"}, Data: map[string]string{"ca.crt": read(search.TLS.CA)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "atlas-search-client"}, Type: corev1.SecretTypeTLS,
			StringData: map[string]string{"tls.crt": read(search.TLS.Cert), "tls.key": read(search.TLS.Key)}},
	} {
		obj.SetNamespace(s.ns)
		if err := s.client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	index := search.NewIndexName(t)
	searchURL := withHost(t, search.URL(t), s.hostIP) // as pods reach it; its certificate names the address
	const name = "indexer-private"
	s.applySample(t, name, map[string]any{
		"kafka.bootstrapServers":   brokers,
		"elasticsearch.addresses":  []string{searchURL},
		"elasticsearch.openSearch": true,
		"elasticsearch.index":      index,
		"autoscaling.pollInterval": "5s",
	})
	s.waitRunning(t, name, 1, 2*time.Minute)

	// item events through the private broker, the items written first as the Atlas API does
	tokenFile := t.TempDir() + "/token"
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	produce := s.produceCmd(t, 2000, 0)
	produce.Args = append(produce.Args, "--"+names.FlagKafkaBrokers, broker.Addr,
		"--"+names.FlagKafkaSASLMechanism, "OAUTHBEARER", "--"+names.FlagKafkaSASLOAuthTokenFile, tokenFile)
	if err := produce.Run(); err != nil {
		t.Fatalf("atlas produce to the OAUTHBEARER broker: %v", err)
	}
	eventually(t, 3*time.Minute, "the TLS index equals the items table", func() error {
		if diff := search.IndexDiff(t, s.pool, index); diff != "" {
			return fmt.Errorf("%s", diff)
		}
		return nil
	})
	// the operator read the lag with the token from the Secret
	eventually(t, time.Minute, "the operator measures the lag", func() error {
		ac := s.consumer(t, name)
		for _, c := range ac.Status.Conditions {
			if c.Type == atlasv1alpha1.ConditionScalingActive {
				if c.Status != metav1.ConditionTrue {
					return fmt.Errorf("ScalingActive %s: %s", c.Status, c.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("no ScalingActive condition")
	})

	// verification off: the pods still work, and the operator warns
	s.applySample(t, name, map[string]any{
		"kafka.bootstrapServers":               brokers,
		"elasticsearch.addresses":              []string{searchURL},
		"elasticsearch.openSearch":             true,
		"elasticsearch.index":                  index,
		"autoscaling.pollInterval":             "5s",
		"elasticsearch.tls.caConfigMapRef":     nil,
		"elasticsearch.tls.insecureSkipVerify": true,
	})
	eventually(t, time.Minute, "a Warning event about insecureSkipVerify", func() error {
		out := s.kubectl(t, nil, "-n", s.ns, "get", "events", "--field-selector", "reason="+controllers.EventInsecureSkipVerify, "-o", "name")
		if strings.TrimSpace(out) == "" {
			return fmt.Errorf("no event")
		}
		return nil
	})
	eventually(t, 2*time.Minute, "the new indexer pod warns that it does not verify", func() error {
		if logs := s.podLogs(t); !strings.Contains(logs, "TLS VERIFICATION OF THE SEARCH SERVER IS OFF") {
			return fmt.Errorf("no warning in the pods' logs")
		}
		return nil
	})
	s.waitRunning(t, name, 1, 2*time.Minute)
}
