package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// checksum summarises the referenced values the pods read at start: it changes when any
// of them changes, and only then, which rolls the pods. Live values are left out.
func (v secretValues) checksum(refs []workload.SecretKeyRef) string {
	h := sha256.New()
	for _, ref := range refs {
		if ref.Live {
			continue
		}
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

// secretCache keeps the data of the Secrets AtlasConsumers reference, by
// resourceVersion. The manager caches only Secrets' metadata (so it never holds every
// Secret of the cluster in memory); the data of a referenced Secret is read from the
// API server once per resourceVersion, which keeps idle reconciles free of requests. A
// Secret's data goes as soon as no AtlasConsumer references it.
type secretCache struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]cachedSecret
	// refs are the Secrets each AtlasConsumer referenced at its last reconcile.
	refs map[types.NamespacedName][]types.NamespacedName
}

// use records the Secrets consumer references now, and drops the data of those no
// consumer references any more.
func (c *secretCache) use(consumer types.NamespacedName, secrets []types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(secrets) == 0 {
		delete(c.refs, consumer)
	} else {
		if c.refs == nil {
			c.refs = map[types.NamespacedName][]types.NamespacedName{}
		}
		c.refs[consumer] = secrets
	}
	referenced := map[types.NamespacedName]bool{}
	for _, names := range c.refs {
		for _, n := range names {
			referenced[n] = true
		}
	}
	for key := range c.entries {
		if !referenced[key] {
			delete(c.entries, key)
		}
	}
}

// forget drops what is kept for a consumer that is gone.
func (c *secretCache) forget(consumer types.NamespacedName) { c.use(consumer, nil) }

// held returns the Secrets whose data is kept.
func (c *secretCache) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

type cachedSecret struct {
	resourceVersion string
	data            map[string][]byte
}

// get returns the Secret's data, or nil when it does not exist.
func (c *secretCache) get(ctx context.Context, cached, api client.Reader, key types.NamespacedName) (map[string][]byte, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := cached.Get(ctx, key, meta)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read Secret %s metadata: %w", key.Name, err)
	}
	c.mu.Lock()
	entry, ok := c.entries[key]
	c.mu.Unlock()
	if err == nil && ok && entry.resourceVersion == meta.ResourceVersion {
		return entry.data, nil
	}
	// Not cached, changed, or not (yet) in the metadata cache: ask the API server.
	s := &corev1.Secret{}
	if err := api.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			c.mu.Lock()
			delete(c.entries, key)
			c.mu.Unlock()
			return nil, nil
		}
		return nil, fmt.Errorf("read Secret %s: %w", key.Name, err)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[types.NamespacedName]cachedSecret{}
	}
	c.entries[key] = cachedSecret{resourceVersion: s.ResourceVersion, data: s.Data}
	c.mu.Unlock()
	return s.Data, nil
}

// readSecrets reads every referenced Secret key.
func (c *secretCache) readSecrets(ctx context.Context, cached, api client.Reader, ac *atlasv1alpha1.AtlasConsumer) (secretValues, error) {
	var names []types.NamespacedName
	for _, name := range workload.SecretNames(ac) {
		names = append(names, types.NamespacedName{Namespace: ac.Namespace, Name: name})
	}
	c.use(types.NamespacedName{Namespace: ac.Namespace, Name: ac.Name}, names)
	values := secretValues{}
	secrets := map[string]map[string][]byte{}
	for _, ref := range workload.SecretRefs(ac) {
		data, seen := secrets[ref.Name]
		if !seen {
			var err error
			if data, err = c.get(ctx, cached, api, types.NamespacedName{Namespace: ac.Namespace, Name: ref.Name}); err != nil {
				return nil, err
			}
			secrets[ref.Name] = data
		}
		if data == nil {
			if ref.Optional {
				continue
			}
			return nil, &invalidReferenceError{fmt.Sprintf("Secret %q (key %q) does not exist in namespace %s", ref.Name, ref.Key, ac.Namespace)}
		}
		val, ok := data[ref.Key]
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
