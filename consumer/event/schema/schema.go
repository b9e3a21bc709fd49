// Package schema embeds the JSON Schema (draft 2020-12) of the v1 event envelope, the
// language-neutral statement of the contract package event enforces in Go.
package schema

import _ "embed"

// EnvelopeV1 is the JSON Schema of envelope v1.
//
//go:embed envelope.v1.schema.json
var EnvelopeV1 []byte

// EnvelopeV1ID is the schema's $id.
const EnvelopeV1ID = "https://atlas.io/schemas/events/envelope.v1.schema.json"
