package controllers

import (
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
)

// expectations remember, per AtlasConsumer, the Deployment the operator last applied
// (its UID and the generation the API server gave it), so that a reconcile reading an
// older version from the cache, which has not seen that write yet, does not take it for
// the current state and act a second time: a second ScaledUp Event, metric increment or
// lastScaleTime. Elastic's operator (ECK) guards its caches the same way. The cache's
// own update event brings the next reconcile.
type expectations struct {
	mu sync.Mutex
	// ttl bounds how long an expectation holds (a write the cache never shows, such as
	// one undone at once by someone else, must not freeze the consumer).
	ttl  time.Duration
	now  func() time.Time
	want map[types.NamespacedName]expectedDeployment
}

type expectedDeployment struct {
	uid        types.UID
	generation int64
	at         time.Time
}

// expect records the Deployment as the operator just wrote it.
func (e *expectations) expect(key types.NamespacedName, dep *appsv1.Deployment) {
	if dep == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.want == nil {
		e.want = map[types.NamespacedName]expectedDeployment{}
	}
	e.want[key] = expectedDeployment{uid: dep.UID, generation: dep.Generation, at: e.now()}
}

// satisfied reports whether cached (the Deployment as the cache has it, nil when absent)
// shows the last write; once it does, or the expectation is stale, it is dropped.
func (e *expectations) satisfied(key types.NamespacedName, cached *appsv1.Deployment) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	want, ok := e.want[key]
	switch {
	case !ok:
		return true
	case cached != nil && cached.UID == want.uid && cached.Generation < want.generation && e.now().Sub(want.at) < e.ttl:
		return false
	default:
		// seen, or another object by now (deleted, re-created), or stale
		delete(e.want, key)
		return true
	}
}

// forget drops the expectation of a consumer that is gone.
func (e *expectations) forget(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.want, key)
}
