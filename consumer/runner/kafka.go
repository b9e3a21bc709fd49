package runner

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

var errGroupMovedOn = errors.New("the consumer group moved on")

// groupMovedOn reports whether a commit failed because this member no longer owns the
// generation it polled in.
func groupMovedOn(err error) bool {
	return errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.UnknownMemberID) ||
		errors.Is(err, kerr.RebalanceInProgress) || errors.Is(err, kerr.FencedInstanceID) ||
		errors.Is(err, kerr.StaleMemberEpoch)
}
