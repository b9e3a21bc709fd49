// Package backoff retries an operation against an unavailable dependency with capped
// exponential backoff and full jitter, until it succeeds, fails permanently, or the
// context ends.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy is a capped exponential backoff: the n-th wait is drawn uniformly from
// [Min, min(Max, Min*2^n)].
type Policy struct {
	Min time.Duration
	Max time.Duration
}

// Default is the policy the consumers use unless configured otherwise.
var Default = Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second}

// Wait returns the wait before retry number attempt (0-based).
func (p Policy) Wait(attempt int) time.Duration {
	lo, hi := p.Min, p.Min
	if lo <= 0 {
		lo, hi = time.Millisecond, time.Millisecond
	}
	for i := 0; i < attempt && hi < p.Max; i++ {
		hi *= 2
	}
	if p.Max > 0 && hi > p.Max {
		hi = p.Max
	}
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Retry returns it at once instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Retry calls op until it returns nil or a Permanent error, or ctx ends. Before each
// wait it calls onRetry (when not nil) with the attempt number, the error and the
// wait, so callers can log, count and report readiness. It returns op's last error
// (unwrapped from Permanent), or ctx's error joined with it when ctx ended first.
func Retry(ctx context.Context, p Policy, onRetry func(attempt int, err error, wait time.Duration), op func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		wait := p.Wait(attempt)
		if onRetry != nil {
			onRetry(attempt, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		}
	}
}
