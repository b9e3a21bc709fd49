package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// How often the topic and the dead-letter topic are looked up: often while one is
// missing (so its creation is noticed soon), rarely while both exist.
const (
	topicRecheckMissing = 5 * time.Second
	topicRecheck        = 30 * time.Second
)

// watchTopics looks the topic and the dead-letter topic up at start and then until ctx
// ends. A missing one makes /readyz answer 503 naming it, sets
// atlas_consumer_topic_missing{topic} to 1, and is logged as a warning when that changes:
// a consumer of a topic that does not exist has nothing to read and shows no lag, so
// without this it would look healthy and idle forever.
func (r *Runner) watchTopics(ctx context.Context) {
	adm := kadm.NewClient(r.client)
	missing := map[string]bool{}
	for {
		wait := topicRecheck
		lookup, cancel := context.WithTimeout(ctx, 10*time.Second)
		details, err := adm.ListTopics(lookup, r.cfg.Topic, r.cfg.DeadLetterTopic)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil { // an unreachable broker is the kafka dependency's report
			for _, t := range []struct{ name, role, flag string }{
				{r.cfg.Topic, "topic", "--topic"},
				{r.cfg.DeadLetterTopic, "dead-letter topic", "--dead-letter-topic"},
			} {
				dependency := t.role + " " + t.name
				d, listed := details[t.name]
				gone := !listed || errors.Is(d.Err, kerr.UnknownTopicOrPartition)
				switch {
				case gone && !missing[t.name]:
					err := fmt.Errorf("it does not exist on the brokers: create it, or check %s", t.flag)
					r.ready.Set(dependency, err)
					r.log.Warn("a topic the consumer needs does not exist", "topic", t.name, "role", t.role, "error", err)
				case !gone && missing[t.name]:
					r.ready.Set(dependency, nil)
					r.log.Info("the topic exists now", "topic", t.name)
				}
				missing[t.name] = gone
				if gone {
					r.metrics.TopicMissing.WithLabelValues(t.name).Set(1)
					wait = topicRecheckMissing
				} else {
					r.metrics.TopicMissing.WithLabelValues(t.name).Set(0)
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
