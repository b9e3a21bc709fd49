package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitIsCappedAndJittered(t *testing.T) {
	p := Policy{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	seen := map[time.Duration]bool{}
	for attempt := 0; attempt < 20; attempt++ {
		for i := 0; i < 50; i++ {
			w := p.Wait(attempt)
			if w < p.Min || w > p.Max {
				t.Fatalf("attempt %d: wait %s outside [%s, %s]", attempt, w, p.Min, p.Max)
			}
			if attempt == 0 && w != p.Min {
				t.Fatalf("first wait %s, want %s", w, p.Min)
			}
			seen[w] = true
		}
	}
	if len(seen) < 10 {
		t.Fatalf("waits are not jittered: only %d distinct values", len(seen))
	}
}

func TestRetryUntilSuccess(t *testing.T) {
	calls, retries := 0, 0
	err := Retry(context.Background(), Policy{Min: time.Millisecond, Max: 2 * time.Millisecond},
		func(int, error, time.Duration) { retries++ },
		func(context.Context) error {
			calls++
			if calls < 4 {
				return errors.New("down")
			}
			return nil
		})
	if err != nil || calls != 4 || retries != 3 {
		t.Fatalf("err=%v calls=%d retries=%d", err, calls, retries)
	}
}

func TestRetryStopsOnPermanentAndContext(t *testing.T) {
	boom := errors.New("bad input")
	err := Retry(context.Background(), Default, nil, func(context.Context) error { return Permanent(boom) })
	if err != boom {
		t.Fatalf("permanent: got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	down := errors.New("down")
	err = Retry(ctx, Policy{Min: 5 * time.Millisecond, Max: 5 * time.Millisecond}, nil, func(context.Context) error { return down })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, down) {
		t.Fatalf("context end: got %v", err)
	}
}
