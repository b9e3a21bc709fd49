package observe

import (
	"log/slog"
	"time"
)

// OnRetry returns the backoff hook for a failed call to dependency that will be
// retried: the dependency is reported not ready with the error (on /readyz), the retry
// is counted in atlas_consumer_retries_total{dependency} and logged as a warning. The
// runner and the sinks share it, so every retry of every dependency shows the same way.
func OnRetry(log *slog.Logger, m *Metrics, ready *Readiness, dependency string) func(attempt int, err error, wait time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		ready.Set(dependency, err)
		m.Retries.WithLabelValues(dependency).Inc()
		log.Warn("dependency unavailable; retrying", "dependency", dependency, "attempt", attempt+1,
			"retry_in", wait.Round(time.Millisecond).String(), "error", err)
	}
}
