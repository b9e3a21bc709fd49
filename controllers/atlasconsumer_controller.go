package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// +kubebuilder:rbac:groups=events.atlas.io,resources=atlasconsumers,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.atlas.io,resources=atlasconsumers/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Event reasons users see on an AtlasConsumer.
const (
	EventScaledUp         = "ScaledUp"
	EventScaledDown       = "ScaledDown"
	EventKafkaUnreachable = "KafkaUnreachable"
	// EventInsecureSkipVerify warns, each time the pods are (re)configured, that the
	// indexer does not verify the search server's certificate.
	EventInsecureSkipVerify = "InsecureSkipVerify"
)

// secretIndex indexes AtlasConsumers by the Secrets they reference.
const secretIndex = "spec.secretNames"

// Reconciler reconciles an AtlasConsumer into the consumer Deployment, its metrics
// Service, its PodDisruptionBudget and, when asked, its NetworkPolicy, and scales the Deployment on lag. It never writes
// the AtlasConsumer's spec: decisions go to its status and to the objects it owns.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server directly (Secrets; names the cache does not
	// hold).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Image is the consumer image when spec.image is empty.
	Image string
	// Lag reads consumer group lag for autoscaling.
	Lag     LagReader
	Metrics *Metrics
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	scaler   *autoscaler
	secrets  secretCache
	expected expectations
}

// Reconcile brings one AtlasConsumer's objects to what its spec says, in short steps:
// read it, read the Secrets it references, check the names it needs are its own,
// decide the replicas, apply the objects, and report the status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ac := &atlasv1alpha1.AtlasConsumer{}
	if err := r.Client.Get(ctx, req.NamespacedName, ac); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get AtlasConsumer: %w", err)
	}
	if !ac.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // garbage collection removes the owned objects
	}
	if ac.Annotations[atlasv1alpha1.PauseReconciliationAnnotation] == "true" {
		return ctrl.Result{}, r.writeStatus(ctx, ac, pausedStatus(ac))
	}

	secrets, err := r.secrets.readSecrets(ctx, r.Client, r.APIReader, ac)
	if invalid := (*invalidReferenceError)(nil); errors.As(err, &invalid) {
		return ctrl.Result{}, r.stall(ctx, ac, ReasonInvalidReference, invalid.Error())
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("read referenced Secrets: %w", err)
	}

	current, err := r.observeOwned(ctx, ac)
	if conflict := (*nameConflictError)(nil); errors.As(err, &conflict) {
		return r.stallAndLookAgain(ctx, ac, conflict)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if !r.expected.satisfied(req.NamespacedName, current.deployment) {
		// The cache has not seen this operator's last write yet: acting on it would act
		// twice. Its update event brings the next reconcile.
		return ctrl.Result{}, nil
	}

	replicas, scale := r.decideReplicas(ctx, ac, secrets, current.deployment)
	cfg := workload.Config{Image: r.Image, Replicas: replicas, SecretChecksum: secrets.checksum(workload.SecretRefs(ac))}

	desired := workload.Deployment(ac, cfg)
	dep, err := ensure(ctx, r.Client, r.APIReader, r.Scheme, ac, desired, current.deployment, deploymentSpec)
	if err == nil && dep == desired {
		// A new Deployment (ensure returns desired itself when it created it) goes out
		// alone: it is what starts the consumer's pods. Its creation brings the next
		// reconcile, which applies the rest and writes the status, queued behind other new
		// consumers' first reconciles (creationsLast).
		r.applied(ac, req.NamespacedName, dep)
		return ctrl.Result{}, nil
	}
	if err == nil {
		_, err = ensure(ctx, r.Client, r.APIReader, r.Scheme, ac, workload.Service(ac), current.service, serviceSpec)
	}
	if err == nil {
		err = r.ensurePodDisruptionBudget(ctx, ac, replicas, current.pdb)
	}
	if err == nil {
		err = r.ensureNetworkPolicy(ctx, ac, secrets)
	}
	if conflict := (*nameConflictError)(nil); errors.As(err, &conflict) {
		return r.stallAndLookAgain(ctx, ac, conflict)
	}
	if err != nil {
		// Say so in the status too; the error requeues with backoff.
		return ctrl.Result{}, errors.Join(err, r.writeStatus(ctx, ac, applyFailedStatus(ac, err)))
	}

	if dep != current.deployment {
		r.applied(ac, req.NamespacedName, dep)
	}
	obs := observed{desired: replicas, deployment: dep, scale: scale}
	if scaled := r.noteScaling(ac, current.deployment, replicas, scale); scaled {
		obs.scaledAt = ptrTime(metav1.NewTime(r.now().Truncate(time.Second)))
	}
	// An autoscaled consumer is reconciled again after each lag measurement (lagPoller).
	return ctrl.Result{}, r.writeStatus(ctx, ac, computeStatus(ac, obs))
}

// applied notes a Deployment this reconcile wrote: the cache must show it before the next
// reconcile acts on it, and an indexer that skips certificate verification is warned about
// each time its pods are (re)configured.
func (r *Reconciler) applied(ac *atlasv1alpha1.AtlasConsumer, key types.NamespacedName, dep *appsv1.Deployment) {
	r.expected.expect(key, dep)
	if workload.SkipsSearchVerification(ac) {
		r.event(ac, corev1.EventTypeWarning, EventInsecureSkipVerify, "Apply",
			"spec.elasticsearch.tls.insecureSkipVerify is true: the indexer does NOT verify the search server's certificate, so anyone on the network path can read and change what it writes; give the server's CA (caSecretRef or caConfigMapRef) instead")
	}
}

// stallAndLookAgain reports a name conflict; the conflicting object is not owned, so no
// watch brings it back: look again in a minute (or sooner, with backoff, when the status
// could not be written).
func (r *Reconciler) stallAndLookAgain(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, conflict *nameConflictError) (ctrl.Result, error) {
	if err := r.stall(ctx, ac, ReasonNameConflict, conflict.Error()); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: time.Minute}, nil
}

// owned are the consumer's objects as they exist (nil when absent).
type owned struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
}

// observeOwned reads the consumer's objects from the cache, which holds only objects
// with the operator's label: a name missing there is checked when the operator creates
// the object (ensure).
func (r *Reconciler) observeOwned(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer) (owned, error) {
	var o owned
	dep, svc, pdb := &appsv1.Deployment{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}
	found, err := getOwned(ctx, r.Client, ac, "Deployment", workload.DeploymentName(ac), dep)
	if err != nil {
		return o, err
	}
	if found {
		o.deployment = dep
	}
	if found, err = getOwned(ctx, r.Client, ac, "Service", workload.ServiceName(ac), svc); err != nil {
		return o, err
	} else if found {
		o.service = svc
	}
	if found, err = getOwned(ctx, r.Client, ac, "PodDisruptionBudget", workload.DeploymentName(ac), pdb); err != nil {
		return o, err
	} else if found {
		o.pdb = pdb
	}
	return o, nil
}

// decideReplicas is the replica count: from the spec, or from the lag when autoscaling.
func (r *Reconciler) decideReplicas(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, secrets secretValues, dep *appsv1.Deployment) (int32, *scaleResult) {
	key := types.NamespacedName{Namespace: ac.Namespace, Name: ac.Name}
	if ac.Spec.Autoscaling == nil {
		r.scaler.forget(key)
		replicas := workload.ReplicasFromSpec(ac)
		r.Metrics.setDesired(key, replicas)
		return replicas, nil
	}
	current := int32(0)
	switch {
	case dep != nil && dep.Spec.Replicas != nil:
		current = *dep.Spec.Replicas
	case ac.Spec.Autoscaling.MinReplicas != nil:
		current = *ac.Spec.Autoscaling.MinReplicas
	default:
		current = 1
	}
	ready := int32(0)
	if dep != nil {
		ready = min(dep.Status.ReadyReplicas, dep.Status.UpdatedReplicas)
	}
	res := r.scaler.decide(ac, kafkaConn(ac, secrets), current, ready)
	r.Metrics.observeScale(key, res)
	if res.fresh && res.lag == nil {
		was := meta.FindStatusCondition(ac.Status.Conditions, atlasv1alpha1.ConditionScalingActive)
		if was == nil || was.Reason != res.decision.ScalingActive.Reason {
			r.event(ac, corev1.EventTypeWarning, EventKafkaUnreachable, "ReadLag", res.decision.ScalingActive.Message)
		}
		log.FromContext(ctx).Info("lag unavailable: keeping the replicas", "replicas", current, "reason", res.decision.ScalingActive.Message)
	}
	return res.decision.Desired, &res
}

// noteScaling reports a change of the replica count made by this reconcile.
func (r *Reconciler) noteScaling(ac *atlasv1alpha1.AtlasConsumer, before *appsv1.Deployment, replicas int32, scale *scaleResult) bool {
	if before == nil || before.Spec.Replicas == nil || *before.Spec.Replicas == replicas {
		return false
	}
	from := *before.Spec.Replicas
	why := "spec.replicas"
	switch {
	case ac.Spec.Suspend:
		why = "spec.suspend"
	case scale != nil:
		why = scale.decision.ScalingActive.Message
	}
	reason, direction := EventScaledUp, "up"
	if replicas < from {
		reason, direction = EventScaledDown, "down"
	}
	r.event(ac, corev1.EventTypeNormal, reason, "Scale", fmt.Sprintf("scaled from %d to %d replicas: %s", from, replicas, why))
	r.Metrics.countScale(types.NamespacedName{Namespace: ac.Namespace, Name: ac.Name}, direction)
	return true
}

func deploymentSpec(d *appsv1.Deployment) any             { return d.Spec }
func serviceSpec(s *corev1.Service) any                   { return s.Spec }
func budgetSpec(b *policyv1.PodDisruptionBudget) any      { return b.Spec }
func networkPolicySpec(n *networkingv1.NetworkPolicy) any { return n.Spec }

// ensurePodDisruptionBudget keeps a budget while more than one pod runs, and removes
// it otherwise (with one pod a budget would block node drains).
func (r *Reconciler) ensurePodDisruptionBudget(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, replicas int32, existing *policyv1.PodDisruptionBudget) error {
	if !workload.WantsPodDisruptionBudget(replicas) {
		if existing == nil {
			return nil
		}
		if err := r.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove PodDisruptionBudget: %w", err)
		}
		return nil
	}
	desired := workload.PodDisruptionBudget(ac)
	_, err := ensure(ctx, r.Client, r.APIReader, r.Scheme, ac, desired, existing, budgetSpec)
	return err
}

// ensureNetworkPolicy keeps the NetworkPolicy spec.networkPolicy asks for, and removes
// the operator's own once it no longer does. A NetworkPolicy of that name the operator
// does not own is a name conflict only while the spec asks for one: without
// spec.networkPolicy it is the user's business (one written before the field existed
// must not stall the consumer). Its Postgres port comes from the DSN the reconcile has
// read anyway, so a new DSN port reaches the policy with the Secret's update.
func (r *Reconciler) ensureNetworkPolicy(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, secrets secretValues) error {
	name := workload.NetworkPolicyName(ac)
	existing := &networkingv1.NetworkPolicy{}
	if !workload.WantsNetworkPolicy(ac) {
		found, err := getOwned(ctx, r.Client, ac, "NetworkPolicy", name, existing)
		if conflict := (*nameConflictError)(nil); errors.As(err, &conflict) {
			return nil
		}
		if err != nil || !found {
			return err
		}
		if err := r.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove NetworkPolicy %s: %w", name, err)
		}
		return nil
	}
	found, err := getOwned(ctx, r.Client, ac, "NetworkPolicy", name, existing)
	if err != nil {
		return err
	}
	if !found {
		existing = nil
	}
	desired := workload.NetworkPolicy(ac, workload.PostgresPorts(string(secrets.get(&ac.Spec.Postgres.DSNSecretRef))))
	_, err = ensure(ctx, r.Client, r.APIReader, r.Scheme, ac, desired, existing, networkPolicySpec)
	return err
}

// stall reports a problem only the user can fix, once as an event, and changes nothing.
func (r *Reconciler) stall(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, reason, msg string) error {
	was := meta.FindStatusCondition(ac.Status.Conditions, atlasv1alpha1.ConditionStalled)
	if was == nil || was.Status != metav1.ConditionTrue || was.Reason != reason || was.Message != msg {
		r.event(ac, corev1.EventTypeWarning, reason, "Reconcile", msg)
	}
	return r.writeStatus(ctx, ac, stalledStatus(ac, reason, msg))
}

// writeStatus writes the status when it changed, and only then.
func (r *Reconciler) writeStatus(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, st atlasv1alpha1.AtlasConsumerStatus) error {
	r.Metrics.observeStatus(client.ObjectKeyFromObject(ac), &st)
	if equality.Semantic.DeepEqual(ac.Status, st) {
		return nil
	}
	patch := client.MergeFrom(ac.DeepCopy())
	ac.Status = st
	if err := r.Client.Status().Patch(ctx, ac, patch); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

func (r *Reconciler) event(ac *atlasv1alpha1.AtlasConsumer, typ, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ac, nil, typ, reason, action, "%s", note)
	}
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.scaler.forget(key)
	r.secrets.forget(key)
	r.expected.forget(key)
	r.Metrics.forget(key)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

// SetupWithManager registers the controller: it watches AtlasConsumers (spec and
// annotation changes, not its own status writes), the objects it owns, and the metadata
// of Secrets, mapped to the AtlasConsumers that reference them.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if r.Lag == nil {
		return errors.New("the reconciler needs a LagReader")
	}
	r.scaler = &autoscaler{poller: newLagPoller(r.Lag, r.now), now: r.now}
	r.expected = expectations{ttl: 30 * time.Second, now: r.now}
	if err := mgr.Add(r.scaler.poller); err != nil {
		return fmt.Errorf("add the lag poller: %w", err)
	}
	err := mgr.GetFieldIndexer().IndexField(ctx, &atlasv1alpha1.AtlasConsumer{}, secretIndex, func(o client.Object) []string {
		return workload.SecretNames(o.(*atlasv1alpha1.AtlasConsumer))
	})
	if err != nil {
		return fmt.Errorf("index AtlasConsumers by Secret: %w", err)
	}
	// Secrets reach the AtlasConsumers that reference them through a controller of their
	// own, so that a failed lookup is retried instead of lost.
	fanout := &secretFanout{reader: mgr.GetClient(), wake: make(chan event.GenericEvent, 1024)}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("atlasconsumer-secrets").
		For(&corev1.Secret{}, builder.OnlyMetadata).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(fanout)
	if err != nil {
		return fmt.Errorf("set up the Secret controller: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("atlasconsumer").
		For(&atlasv1alpha1.AtlasConsumer{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&appsv1.Deployment{}, ownedBy(mgr, &atlasv1alpha1.AtlasConsumer{})).
		Watches(&corev1.Service{}, ownedBy(mgr, &atlasv1alpha1.AtlasConsumer{})).
		Watches(&policyv1.PodDisruptionBudget{}, ownedBy(mgr, &atlasv1alpha1.AtlasConsumer{})).
		Watches(&networkingv1.NetworkPolicy{}, ownedBy(mgr, &atlasv1alpha1.AtlasConsumer{})).
		WatchesRawSource(source.Channel(fanout.wake, wakesLast(&handler.EnqueueRequestForObject{}))).
		WatchesRawSource(source.Channel(r.scaler.poller.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Complete(r)
}

// secretFanout reconciles a Secret (its metadata changed) into a reconcile of every
// AtlasConsumer of its namespace that references it. A failed lookup is returned, so the
// Secret is retried with backoff instead of the change being lost.
type secretFanout struct {
	reader client.Reader
	wake   chan event.GenericEvent
}

// Reconcile implements reconcile.Reconciler.
func (f *secretFanout) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	users, err := consumersUsingSecret(ctx, f.reader, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, key := range users {
		select {
		case f.wake <- event.GenericEvent{Object: &atlasv1alpha1.AtlasConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
		case <-ctx.Done():
			return ctrl.Result{}, ctx.Err()
		}
	}
	return ctrl.Result{}, nil
}

// consumersUsingSecret lists the AtlasConsumers of the Secret's namespace that
// reference it (through the cache's index).
func consumersUsingSecret(ctx context.Context, reader client.Reader, secret types.NamespacedName) ([]types.NamespacedName, error) {
	var list atlasv1alpha1.AtlasConsumerList
	if err := reader.List(ctx, &list, client.InNamespace(secret.Namespace), client.MatchingFields{secretIndex: secret.Name}); err != nil {
		return nil, fmt.Errorf("list the AtlasConsumers referencing Secret %s: %w", secret.Name, err)
	}
	out := make([]types.NamespacedName, 0, len(list.Items))
	for _, ac := range list.Items {
		out = append(out, types.NamespacedName{Namespace: ac.Namespace, Name: ac.Name})
	}
	return out, nil
}
