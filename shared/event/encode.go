package event

import (
	"slices"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// appendEvent is the hand-written encoder of the envelope Normalize writes for every
// notification (the top level, egress and externalEvent; the rarer nested members go
// through the codec). It writes exactly what the codec writes for the same value (same
// member order, omissions, escaping, compacted raw values, Extra in key order;
// TestHandEncoderMatchesCodec and FuzzDecode hold it to that), without the codec's
// reflection over every field.
func appendEvent(b []byte, x *InternalEventV2) ([]byte, error) {
	o := object{b: append(b, '{')}
	o.str("v", x.V)
	o.str("source", x.Source)
	o.str("correlationId", x.CorrelationID)
	o.strOmit("traceId", x.TraceID)
	o.strOmit("replyTo", x.ReplyTo)
	o.strOmit("timeoutAt", x.TimeoutAt)
	if x.RoutingSlip != nil {
		o.value("routingSlip", x.RoutingSlip)
	}
	if x.Egress != nil {
		o.name("egress")
		o.b = append(o.b, '{')
		eg := object{b: o.b}
		eg.str("destination", x.Egress.Destination)
		eg.strOmit("type", x.Egress.Type)
		eg.extra(x.Egress.Extra)
		o.b, o.err = append(eg.b, '}'), firstErr(o.err, eg.err)
	}
	if x.User != nil {
		o.value("user", x.User)
	}
	if x.Auth != nil {
		o.value("auth", x.Auth)
	}
	o.str("type", x.Type)
	o.strOmit("channel", x.Channel)
	o.strOmit("userId", x.UserID)
	if x.Payload != nil {
		o.raw("payload", x.Payload)
	}
	if x.Message != nil {
		o.value("message", x.Message)
	}
	if ee := x.ExternalEvent; ee != nil {
		o.name("externalEvent")
		o.b = append(o.b, '{')
		xo := object{b: o.b}
		xo.str("id", ee.ID)
		xo.str("source", ee.Source)
		xo.str("kind", ee.Kind)
		xo.str("version", ee.Version)
		xo.str("createdAt", ee.CreatedAt)
		xo.raw("payload", ee.Payload)
		if ee.RawPayload != nil {
			xo.raw("rawPayload", ee.RawPayload)
		}
		xo.extra(ee.Extra)
		o.b, o.err = append(xo.b, '}'), firstErr(o.err, xo.err)
	}
	if x.Annotations != nil {
		o.value("annotations", x.Annotations)
	}
	if x.Candidates != nil {
		o.value("candidates", x.Candidates)
	}
	if x.Errors != nil {
		o.value("errors", x.Errors)
	}
	if x.QOS != nil {
		o.value("qos", x.QOS)
	}
	o.extra(x.Extra)
	return append(o.b, '}'), o.err
}

// object appends the members of one JSON object to b; the first error is kept.
type object struct {
	b   []byte
	n   int // members written so far
	err error
}

func (o *object) name(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = appendString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *object) str(k, v string) {
	o.name(k)
	o.b = appendString(o.b, v)
}

func (o *object) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

// rawOptions check and compact raw members as the codec does.
var rawOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// raw writes a raw JSON member, checked and compacted (null when empty, as
// json.RawMessage encodes).
func (o *object) raw(k string, v []byte) {
	o.name(k)
	if len(v) == 0 {
		o.b = append(o.b, "null"...)
		return
	}
	var err error
	o.b, err = jsontext.AppendFormat(o.b, v, rawOptions...)
	o.err = firstErr(o.err, err)
}

// value writes a member through the codec.
func (o *object) value(k string, v any) {
	o.name(k)
	enc, err := jsonv2.Marshal(v, encodeOptions)
	if err != nil {
		o.err = firstErr(o.err, err)
		enc = []byte("null")
	}
	o.b = append(o.b, enc...)
}

// extra writes the unknown members in key order.
func (o *object) extra(x Extra) {
	if len(x) == 0 {
		return
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		o.raw(k, x[k])
	}
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// appendString appends s as a JSON string: plain ASCII directly, anything else (escapes,
// multi-byte and invalid UTF-8) the codec's way.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ = jsontext.AppendQuote(b, s) // invalid UTF-8 becomes U+FFFD, as in the codec
			return b
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
