package workload

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// TestSearchTLS: spec.elasticsearch.tls becomes a projected volume (the CA from a Secret or
// a ConfigMap, the client certificate from Secrets), the flags naming its files, and the
// Secret keys whose changes roll the pods; audit pods get none of it.
func TestSearchTLS(t *testing.T) {
	secret := func(name, key string) *corev1.SecretKeySelector {
		return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	}
	configMap := &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "bundle"}, Key: "trust.pem"}
	type source struct{ kind, name, key, path string }
	const dir = "/etc/atlas/search-tls"
	for _, tc := range []struct {
		name    string
		mode    atlasv1alpha1.AtlasConsumerMode
		tls     atlasv1alpha1.ElasticsearchTLS
		sources []source
		env     map[string]string
		refs    []SecretKeyRef
	}{{
		name:    "CA from a Secret",
		mode:    atlasv1alpha1.AtlasConsumerModeIndexer,
		tls:     atlasv1alpha1.ElasticsearchTLS{CASecretRef: secret("es-ca", "ca.crt")},
		sources: []source{{"Secret", "es-ca", "ca.crt", "ca.crt"}},
		env:     map[string]string{"ATLAS_ELASTICSEARCH_TLS_CA_FILE": dir + "/ca.crt"},
		refs:    []SecretKeyRef{{"pg", "dsn", false, false}, {"es-ca", "ca.crt", false, false}},
	}, {
		name: "CA from a ConfigMap and a client certificate",
		mode: atlasv1alpha1.AtlasConsumerModeIndexer,
		tls:  atlasv1alpha1.ElasticsearchTLS{CAConfigMapRef: configMap, CertSecretRef: secret("client", "tls.crt"), KeySecretRef: secret("client", "tls.key")},
		sources: []source{{"ConfigMap", "bundle", "trust.pem", "ca.crt"},
			{"Secret", "client", "tls.crt", "tls.crt"}, {"Secret", "client", "tls.key", "tls.key"}},
		env: map[string]string{"ATLAS_ELASTICSEARCH_TLS_CA_FILE": dir + "/ca.crt",
			"ATLAS_ELASTICSEARCH_TLS_CERT_FILE": dir + "/tls.crt", "ATLAS_ELASTICSEARCH_TLS_KEY_FILE": dir + "/tls.key"},
		refs: []SecretKeyRef{{"pg", "dsn", false, false}, {"client", "tls.crt", false, false}, {"client", "tls.key", false, false}},
	}, {
		name: "no verification",
		mode: atlasv1alpha1.AtlasConsumerModeIndexer,
		tls:  atlasv1alpha1.ElasticsearchTLS{InsecureSkipVerify: true},
		env:  map[string]string{"ATLAS_ELASTICSEARCH_TLS_INSECURE_SKIP_VERIFY": "true"},
		refs: []SecretKeyRef{{"pg", "dsn", false, false}},
	}, {
		name: "audit ignores the search server",
		mode: atlasv1alpha1.AtlasConsumerModeAudit,
		tls:  atlasv1alpha1.ElasticsearchTLS{CASecretRef: secret("es-ca", "ca.crt"), InsecureSkipVerify: true},
		refs: []SecretKeyRef{{"pg", "dsn", false, false}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ac := consumer(func(a *atlasv1alpha1.AtlasConsumer) {
				a.Spec.Mode = tc.mode
				tls := tc.tls
				a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es:9200"}, TLS: &tls}
			})
			pod := Deployment(ac, Config{Image: "img", Replicas: 1}).Spec.Template.Spec
			var got []source
			for _, v := range pod.Volumes {
				if v.Name != searchTLSVolume {
					continue
				}
				for _, s := range v.Projected.Sources {
					switch {
					case s.Secret != nil:
						got = append(got, source{"Secret", s.Secret.Name, s.Secret.Items[0].Key, s.Secret.Items[0].Path})
					case s.ConfigMap != nil:
						got = append(got, source{"ConfigMap", s.ConfigMap.Name, s.ConfigMap.Items[0].Key, s.ConfigMap.Items[0].Path})
					}
				}
			}
			if !slices.Equal(got, tc.sources) {
				t.Errorf("projected sources = %v, want %v", got, tc.sources)
			}
			mounted := slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == searchTLSVolume && m.MountPath == dir && m.ReadOnly
			})
			if mounted != (len(tc.sources) > 0) {
				t.Errorf("volume mounted read-only at %s: %t, want %t", dir, mounted, len(tc.sources) > 0)
			}
			env := map[string]string{}
			for _, e := range pod.Containers[0].Env {
				if strings.HasPrefix(e.Name, "ATLAS_ELASTICSEARCH_TLS") {
					env[e.Name] = e.Value
				}
			}
			if len(env) != len(tc.env) {
				t.Errorf("TLS env = %v, want %v", env, tc.env)
			}
			for k, v := range tc.env {
				if env[k] != v {
					t.Errorf("%s = %q, want %q", k, env[k], v)
				}
			}
			if refs := SecretRefs(ac); !slices.Equal(refs, tc.refs) {
				t.Errorf("SecretRefs = %v, want %v", refs, tc.refs)
			}
			if SkipsSearchVerification(ac) != (tc.mode == atlasv1alpha1.AtlasConsumerModeIndexer && tc.tls.InsecureSkipVerify) {
				t.Errorf("SkipsSearchVerification = %t", SkipsSearchVerification(ac))
			}
		})
	}
}
