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

// Package controllers holds the AtlasConsumer reconciler. It reconciles AtlasConsumer
// resources into the Deployments (with their metrics Services and PodDisruptionBudgets)
// that run the audit and indexer consumers, and scales them on consumer-group lag.
//
// The objects are built by the pure functions of package workload and the scaling
// decision is the pure function of package scaling; this package reads, applies
// (server-side, field owner "atlas-operator") and reports status.
package controllers
