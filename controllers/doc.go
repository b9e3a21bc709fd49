/*
Copyright 2026 The Atlas Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package controllers will hold the AtlasConsumer reconciler, which reconciles
// AtlasConsumer resources into the Deployments (and their Services and
// PodDisruptionBudgets) that run the audit and indexer consumers. The reconciler lands
// with the operator issue; for now this package only carries the RBAC markers from which
// `make manifests` generates config/rbac/role.yaml.
package controllers

// +kubebuilder:rbac:groups=events.atlas.io,resources=atlasconsumers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.atlas.io,resources=atlasconsumers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
