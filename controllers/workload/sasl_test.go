package workload

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// TestKafkaSASL: each mechanism reaches the pod as flags, Secret references (never values)
// and, for an OAUTHBEARER token, a mounted file the consumer reads again at every
// authentication (a Live reference: a new token rolls no pod).
func TestKafkaSASL(t *testing.T) {
	sel := func(name, key string) *corev1.SecretKeySelector {
		return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	}
	for _, tc := range []struct {
		name    string
		sasl    atlasv1alpha1.KafkaSASL
		values  map[string]string // env values
		secrets map[string]string // env from Secret keys
		token   bool              // the token volume is mounted
		refs    []SecretKeyRef
	}{{
		name:    "SCRAM",
		sasl:    atlasv1alpha1.KafkaSASL{Mechanism: "SCRAM-SHA-512", UsernameSecretRef: sel("auth", "user"), PasswordSecretRef: sel("auth", "password")},
		values:  map[string]string{"ATLAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
		secrets: map[string]string{"ATLAS_KAFKA_SASL_USERNAME": "auth/user", "ATLAS_KAFKA_SASL_PASSWORD": "auth/password"},
		refs:    []SecretKeyRef{{"pg", "dsn", false, false}, {"auth", "user", false, false}, {"auth", "password", false, false}},
	}, {
		name: "OAUTHBEARER token",
		sasl: atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{TokenSecretRef: sel("jwt", "token")}},
		values: map[string]string{"ATLAS_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
			"ATLAS_KAFKA_SASL_OAUTH_TOKEN_FILE": "/etc/atlas/kafka-sasl/token"},
		token: true,
		refs:  []SecretKeyRef{{"pg", "dsn", false, false}, {"jwt", "token", false, true}},
	}, {
		name: "OAUTHBEARER client credentials",
		sasl: atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{
			TokenURL: "https://idp/token", ClientIDSecretRef: sel("client", "id"), ClientSecretSecretRef: sel("client", "secret"), Scopes: []string{"kafka", "events"}}},
		values: map[string]string{"ATLAS_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
			"ATLAS_KAFKA_SASL_OAUTH_TOKEN_URL": "https://idp/token", "ATLAS_KAFKA_SASL_OAUTH_SCOPES": "kafka,events"},
		secrets: map[string]string{"ATLAS_KAFKA_SASL_OAUTH_CLIENT_ID": "client/id", "ATLAS_KAFKA_SASL_OAUTH_CLIENT_SECRET": "client/secret"},
		refs:    []SecretKeyRef{{"pg", "dsn", false, false}, {"client", "id", false, false}, {"client", "secret", false, false}},
	}, {
		name:   "AWS MSK IAM",
		sasl:   atlasv1alpha1.KafkaSASL{Mechanism: "AWS_MSK_IAM"},
		values: map[string]string{"ATLAS_KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"},
		refs:   []SecretKeyRef{{"pg", "dsn", false, false}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ac := consumer(func(a *atlasv1alpha1.AtlasConsumer) { sasl := tc.sasl; a.Spec.Kafka.SASL = &sasl })
			pod := Deployment(ac, Config{Image: "img", Replicas: 1}).Spec.Template.Spec
			values, secrets := map[string]string{}, map[string]string{}
			for _, e := range pod.Containers[0].Env {
				if !strings.HasPrefix(e.Name, "ATLAS_KAFKA_SASL") {
					continue
				}
				if e.ValueFrom != nil {
					secrets[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				} else {
					values[e.Name] = e.Value
				}
			}
			if !maps.Equal(values, tc.values) {
				t.Errorf("env values = %v, want %v", values, tc.values)
			}
			if !maps.Equal(secrets, tc.secrets) {
				t.Errorf("env from Secrets = %v, want %v", secrets, tc.secrets)
			}
			mounted := slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == kafkaSASLVolume && m.MountPath == kafkaSASLDir && m.ReadOnly
			})
			if mounted != tc.token {
				t.Errorf("token volume mounted: %t, want %t", mounted, tc.token)
			}
			if refs := SecretRefs(ac); !slices.Equal(refs, tc.refs) {
				t.Errorf("SecretRefs = %v, want %v", refs, tc.refs)
			}
		})
	}
}
