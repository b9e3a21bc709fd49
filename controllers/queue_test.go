package controllers

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

type schemeAndMapper struct {
	scheme *runtime.Scheme
	mapper meta.RESTMapper
}

func (s schemeAndMapper) GetScheme() *runtime.Scheme     { return s.scheme }
func (s schemeAndMapper) GetRESTMapper() meta.RESTMapper { return s.mapper }

// The creation of an owned object (the echo of the operator's own first write) and a
// Secret's wake queue the AtlasConsumer behind the consumers waiting for their first
// reconcile; an update or a deletion of an owned object is queued in turn.
func TestOwnedCreationsQueueLast(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := atlasv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(atlasv1alpha1.GroupVersion.WithKind("AtlasConsumer"), meta.RESTScopeNamespace)
	h := ownedBy(schemeAndMapper{scheme, mapper}, &atlasv1alpha1.AtlasConsumer{})

	owned := func(owner string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: owner + "-consumer", ResourceVersion: "1",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: atlasv1alpha1.GroupVersion.String(), Kind: "AtlasConsumer",
				Name: owner, UID: types.UID("uid-" + owner), Controller: ptr.To(true)}}}}
	}
	cases := []struct {
		name         string
		send         func(q priorityqueue.PriorityQueue[reconcile.Request])
		wantPriority int
	}{
		{"created", func(q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Create(context.Background(), event.CreateEvent{Object: owned("a")}, q)
		}, handler.LowPriority},
		{"updated", func(q priorityqueue.PriorityQueue[reconcile.Request]) {
			changed := owned("a")
			changed.ResourceVersion = "2"
			h.Update(context.Background(), event.UpdateEvent{ObjectOld: owned("a"), ObjectNew: changed}, q)
		}, 0},
		{"deleted", func(q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Delete(context.Background(), event.DeleteEvent{Object: owned("a")}, q)
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := priorityqueue.New[reconcile.Request]("test")
			defer q.ShutDown()
			tc.send(q)
			got, priority, _ := getWithin(t, q, 5*time.Second)
			if got.Name != "a" || got.Namespace != "ns" {
				t.Fatalf("queued %v, want ns/a", got)
			}
			if priority != tc.wantPriority {
				t.Fatalf("queued at priority %d, want %d", priority, tc.wantPriority)
			}
		})
	}

	// A consumer woken because a Secret it references changed waits too.
	t.Run("woken by a Secret", func(t *testing.T) {
		q := priorityqueue.New[reconcile.Request]("test")
		defer q.ShutDown()
		wakesLast(&handler.EnqueueRequestForObject{}).Generic(context.Background(),
			event.GenericEvent{Object: &atlasv1alpha1.AtlasConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}}, q)
		if _, priority, _ := getWithin(t, q, 5*time.Second); priority != handler.LowPriority {
			t.Fatalf("queued at priority %d, want %d", priority, handler.LowPriority)
		}
	})

	// In a queue holding new consumers, the echo of a's first write comes after them.
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	h.Create(context.Background(), event.CreateEvent{Object: owned("a")}, q)
	for _, name := range []string{"b", "c"} {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}})
	}
	var order []string
	for range 3 {
		got, _, _ := getWithin(t, q, 5*time.Second)
		order = append(order, got.Name)
		q.Done(got)
	}
	if order[2] != "a" {
		t.Fatalf("order %v, want a last", order)
	}
}

func getWithin(t *testing.T, q priorityqueue.PriorityQueue[reconcile.Request], d time.Duration) (reconcile.Request, int, bool) {
	t.Helper()
	type got struct {
		r        reconcile.Request
		priority int
		shutdown bool
	}
	ch := make(chan got, 1)
	go func() {
		r, p, s := q.GetWithPriority()
		ch <- got{r, p, s}
	}()
	select {
	case g := <-ch:
		return g.r, g.priority, g.shutdown
	case <-time.After(d):
		t.Fatalf("nothing queued within %s", d)
		return reconcile.Request{}, 0, true
	}
}
