package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/elastic/go-elasticsearch/v8"
)

// outcome is what the search server said about one operation.
type outcome int

const (
	applied  outcome = iota // written, or deleted, or already gone
	conflict                // a newer version is already there: also done
	retry                   // 429 or 5xx: try again later
	rejected                // any other 4xx: never going to work
)

// result is the outcome of one operation, with the server's reason when it failed.
type result struct {
	outcome outcome
	status  int
	reason  string
}

// bulk sends the operations in one request and classifies each item's result.
func bulk(ctx context.Context, es *elasticsearch.Client, index string, ops []op) ([]result, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, o := range ops {
		action := "index"
		if o.delete() {
			action = "delete"
		}
		meta := map[string]map[string]any{action: {
			"_index": index, "_id": o.id.String(), "version": o.version, "version_type": "external_gte",
		}}
		if err := enc.Encode(meta); err != nil {
			return nil, err
		}
		if !o.delete() {
			if err := enc.Encode(o.doc); err != nil {
				return nil, err
			}
		}
	}
	resp, err := es.Bulk(&body, es.Bulk.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("bulk request: %w", err)
	}
	defer resp.Body.Close()
	if resp.IsError() {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, fmt.Errorf("bulk request: %s: %s", resp.Status(), msg)
	}
	var parsed struct {
		Items []map[string]struct {
			Status int             `json:"status"`
			Result string          `json:"result"`
			Error  json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&parsed); err != nil {
		return nil, fmt.Errorf("bulk response: %w", err)
	}
	if len(parsed.Items) != len(ops) {
		return nil, fmt.Errorf("bulk response has %d items for %d operations", len(parsed.Items), len(ops))
	}
	out := make([]result, len(ops))
	for i, item := range parsed.Items {
		for _, r := range item {
			out[i] = outcomeOf(ops[i].delete(), r.Status, r.Error)
		}
	}
	return out, nil
}

// outcomeOf classifies the search server's answer for one operation.
func outcomeOf(isDelete bool, status int, errBody json.RawMessage) result {
	r := result{status: status}
	switch {
	case status >= 200 && status < 300, isDelete && status == 404:
		r.outcome = applied // 404: the delete of a document that is not there
	case status == 404:
		r.outcome = retry // the index itself is missing: an operator problem, not the event's
	case status == 409:
		r.outcome = conflict
	case status == 429 || status >= 500:
		r.outcome = retry
	default:
		r.outcome = rejected
	}
	if len(errBody) > 0 && r.outcome != applied && r.outcome != conflict {
		var e struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(errBody, &e) == nil && e.Type != "" {
			r.reason = e.Type + ": " + e.Reason
		} else {
			r.reason = string(errBody)
		}
	}
	if r.reason == "" && r.outcome >= retry {
		r.reason = "status " + strconv.Itoa(status)
	}
	return r
}
