package controllers

import (
	"testing"

	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// TestChecksumLeavesLiveValuesOut: the pods' checksum moves with a value they read at start,
// never with one they read again themselves (an OAuth token), which would roll them for nothing.
func TestChecksumLeavesLiveValuesOut(t *testing.T) {
	refs := []workload.SecretKeyRef{{Name: "pg", Key: "dsn"}, {Name: "jwt", Key: "token", Live: true}}
	before := secretValues{"pg/dsn": []byte("postgres://a"), "jwt/token": []byte("t1")}.checksum(refs)
	if got := (secretValues{"pg/dsn": []byte("postgres://a"), "jwt/token": []byte("t2")}).checksum(refs); got != before {
		t.Errorf("a new token changed the checksum")
	}
	if got := (secretValues{"pg/dsn": []byte("postgres://b"), "jwt/token": []byte("t1")}).checksum(refs); got == before {
		t.Errorf("a new DSN left the checksum as it was")
	}
}
