package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// secretValues are the values of the Secret keys an AtlasConsumer references, keyed
// "secret/key"; an optional key that is missing is absent.
type secretValues map[string][]byte

func (v secretValues) get(sel *corev1.SecretKeySelector) []byte {
	if sel == nil {
		return nil
	}
	return v[sel.Name+"/"+sel.Key]
}

// checksum summarises the referenced values: it changes when any of them changes, and
// only then, which rolls the pods.
func (v secretValues) checksum(refs []workload.SecretKeyRef) string {
	h := sha256.New()
	for _, ref := range refs {
		val, ok := v[ref.Name+"/"+ref.Key]
		fmt.Fprintf(h, "%s/%s %t %d:", ref.Name, ref.Key, ok, len(val))
		h.Write(val)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// invalidReferenceError is a referenced Secret or key that does not exist: the user must
// fix it, retrying cannot.
type invalidReferenceError struct{ msg string }

func (e *invalidReferenceError) Error() string { return e.msg }

// readSecrets reads every referenced Secret key. Secrets are read from the API server,
// not from a cache: the operator caches only Secrets' metadata (to notice changes), so
// it never holds every Secret of the cluster in memory.
func readSecrets(ctx context.Context, reader client.Reader, ac *atlasv1alpha1.AtlasConsumer) (secretValues, error) {
	values := secretValues{}
	secrets := map[string]*corev1.Secret{}
	for _, ref := range workload.SecretRefs(ac) {
		s, seen := secrets[ref.Name]
		if !seen {
			s = &corev1.Secret{}
			err := reader.Get(ctx, client.ObjectKey{Namespace: ac.Namespace, Name: ref.Name}, s)
			switch {
			case apierrors.IsNotFound(err):
				s = nil
			case err != nil:
				return nil, fmt.Errorf("read Secret %s: %w", ref.Name, err)
			}
			secrets[ref.Name] = s
		}
		if s == nil {
			if ref.Optional {
				continue
			}
			return nil, &invalidReferenceError{fmt.Sprintf("Secret %q (key %q) does not exist in namespace %s", ref.Name, ref.Key, ac.Namespace)}
		}
		val, ok := s.Data[ref.Key]
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, &invalidReferenceError{fmt.Sprintf("Secret %q has no key %q", ref.Name, ref.Key)}
		}
		values[ref.Name+"/"+ref.Key] = val
	}
	return values, nil
}
