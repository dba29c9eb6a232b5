package event

import (
	"encoding/json"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Extra holds the JSON members of an object that this package has no field for.
// Other BitBrat services add fields to the envelope; keeping them verbatim means a
// message that passes through this edge comes out with everything it came in with.
// Keys in Extra must not repeat a key the struct itself encodes.
//
// Each contract type's Extra field is its `json:",embed"` member: the JSON codec
// (github.com/go-json-experiment/json, the design of encoding/json/v2) collects the
// members it has no field for there while it decodes the known ones, in one pass over
// the input, and writes them back after the known ones.
type Extra map[string]json.RawMessage

// The codec's options, the same for every call so that nested calls (a contract type
// inside another) never change them midway.
var (
	// decodeOptions accept what encoding/json accepted: a repeated member (the last
	// wins) and invalid UTF-8 (TypeScript's JSON.stringify writes lone surrogates).
	decodeOptions = jsonv2.JoinOptions(
		jsontext.AllowDuplicateNames(true),
		jsontext.AllowInvalidUTF8(true),
	)
	// encodeOptions write Extra in key order, so that output is deterministic, and do
	// not check names for repeats (the struct's own names cannot repeat; Extra must not
	// repeat them, as documented).
	encodeOptions = jsonv2.JoinOptions(
		jsonv2.Deterministic(true),
		jsontext.AllowDuplicateNames(true),
		jsontext.AllowInvalidUTF8(true),
	)
)

// unmarshalKeep decodes b into p, a pointer to a method-less copy of a contract type.
func unmarshalKeep(b []byte, p any) error { return jsonv2.Unmarshal(b, p, decodeOptions) }

// marshalKeep encodes p, a pointer to a method-less copy of a contract type.
func marshalKeep(p any) ([]byte, error) { return jsonv2.Marshal(p, encodeOptions) }

// decodeFrom and encodeTo are the streaming forms the codec calls for a contract type
// nested in another (the options come with the decoder or encoder).
func decodeFrom(d *jsontext.Decoder, p any) error { return jsonv2.UnmarshalDecode(d, p) }
func encodeTo(e *jsontext.Encoder, p any) error   { return jsonv2.MarshalEncode(e, p) }

// Unmarshal decodes b into v with this package's codec and its leniency; the
// functions read their own structures of outside input (EventSub frames, probes)
// with it, so that one message is read the same way throughout.
func Unmarshal(b []byte, v any) error { return jsonv2.Unmarshal(b, v, decodeOptions) }

// Marshal encodes v with this package's codec (deterministic member order).
func Marshal(v any) ([]byte, error) { return jsonv2.Marshal(v, encodeOptions) }
