package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestExpectations(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "audit"}
	dep := func(uid string, gen int64) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Generation: gen}}
	}
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name    string
		written *appsv1.Deployment
		cached  *appsv1.Deployment
		after   time.Duration
		want    bool
	}{
		{"nothing written", nil, dep("a", 3), 0, true},
		{"the cache still shows the version before the write", dep("a", 4), dep("a", 3), time.Second, false},
		{"the cache shows the write", dep("a", 4), dep("a", 4), time.Second, true},
		{"the cache shows a later write", dep("a", 4), dep("a", 5), time.Second, true},
		{"the Deployment is gone", dep("a", 4), nil, time.Second, true},
		{"another Deployment by now (re-created)", dep("a", 4), dep("b", 1), time.Second, true},
		{"a write the cache never shows stops holding", dep("a", 4), dep("a", 3), time.Minute, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := now
			e := &expectations{ttl: 30 * time.Second, now: func() time.Time { return clock }}
			e.expect(key, c.written)
			clock = clock.Add(c.after)
			if got := e.satisfied(key, c.cached); got != c.want {
				t.Fatalf("satisfied = %v, want %v", got, c.want)
			}
			if c.want && !e.satisfied(key, dep("a", 0)) {
				t.Fatal("a satisfied expectation must be dropped")
			}
		})
	}
}
