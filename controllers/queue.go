package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// creationsLast enqueues the owner of a newly created owned object at low priority
// (controller-runtime's priority queue, on by default). Such a creation is the echo of
// this operator's own write: a new consumer's Deployment, applied alone by its first
// reconcile. The reconcile it brings writes the rest (Service, budget, status) and waits
// behind the first reconciles of the AtlasConsumers still queued, so that in a burst (a
// fleet applied by Argo CD or Flux, or created while the operator was down) every
// consumer's pods are started before any consumer's metrics Service and status are
// written. Updates and deletions of owned objects keep their priority: they are drift or
// rollout progress, and are acted on in turn. Without a priority queue it changes nothing.
func creationsLast(h handler.EventHandler) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Create(ctx, e, lowered(q))
		},
		UpdateFunc:  h.Update,
		DeleteFunc:  h.Delete,
		GenericFunc: h.Generic,
	}
}

// wakesLast enqueues what a channel source wakes at low priority: the AtlasConsumers
// referencing a Secret that changed. At the operator's start every Secret is "changed"
// (the Secret controller's first list) and wakes every consumer that uses it; those
// reconciles, and those of a rotation in a burst, wait behind consumers whose pods have
// not been started yet.
func wakesLast(h handler.EventHandler) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: h.Create,
		UpdateFunc: h.Update,
		DeleteFunc: h.Delete,
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Generic(ctx, e, lowered(q))
		},
	}
}

// lowered is q adding at low priority, when q is a priority queue.
func lowered(q workqueue.TypedRateLimitingInterface[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		return lowPriorityQueue{pq}
	}
	return q
}

// lowPriorityQueue adds at handler.LowPriority what is added without a priority.
type lowPriorityQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
}

func low(o priorityqueue.AddOpts) priorityqueue.AddOpts {
	if o.Priority == nil {
		p := handler.LowPriority
		o.Priority = &p
	}
	return o
}

func (q lowPriorityQueue) Add(item reconcile.Request) {
	q.PriorityQueue.AddWithOpts(low(priorityqueue.AddOpts{}), item)
}

func (q lowPriorityQueue) AddAfter(item reconcile.Request, after time.Duration) {
	q.PriorityQueue.AddWithOpts(low(priorityqueue.AddOpts{After: after}), item)
}

func (q lowPriorityQueue) AddRateLimited(item reconcile.Request) {
	q.PriorityQueue.AddWithOpts(low(priorityqueue.AddOpts{RateLimited: true}), item)
}

func (q lowPriorityQueue) AddWithOpts(o priorityqueue.AddOpts, items ...reconcile.Request) {
	q.PriorityQueue.AddWithOpts(low(o), items...)
}

// ownedBy enqueues the AtlasConsumer that controls an owned object, its creations last.
func ownedBy(c interface {
	GetScheme() *runtime.Scheme
	GetRESTMapper() meta.RESTMapper
}, owner client.Object) handler.EventHandler {
	return creationsLast(handler.EnqueueRequestForOwner(c.GetScheme(), c.GetRESTMapper(), owner, handler.OnlyControllerOwner()))
}
