package migrations_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Two migrators starting together (two replicas) apply each migration once: the
// advisory lock serialises them and the second finds nothing to do.
func TestConcurrentUpAppliesOnce(t *testing.T) {
	dsn := infra.NewDatabase(t)
	ctx := context.Background()

	m, err := migrations.Open(dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Check(ctx)
	if !errors.Is(err, migrations.ErrOutOfDate) {
		t.Fatalf("Check on an empty database = %v, want ErrOutOfDate", err)
	}
	t.Logf("empty database: %v", err)

	const replicas = 4
	applied := make([]int, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mi, err := migrations.Open(dsn, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer mi.Close()
			applied[i], errs[i] = mi.Up(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	current, target, err := m.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if current != target || int64(total) != target {
		t.Fatalf("schema at %d of %d after %d applications by %d concurrent replicas, want each migration applied once", current, target, total, replicas)
	}
	if err := m.Check(ctx); err != nil {
		t.Fatalf("Check after Up: %v", err)
	}
}
