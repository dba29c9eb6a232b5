package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal a: %v", err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal b: %v", err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestRoundTripFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			switch {
			case strings.HasPrefix(filepath.Base(f), "finalize_"):
				v = &FinalizeMessage{}
			case strings.HasPrefix(filepath.Base(f), "deadletter"):
				v = &DeadLetter{}
			default:
				v = &InternalEventV2{}
			}
			if err := json.Unmarshal(in, v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !jsonEqual(t, in, out) {
				t.Errorf("round trip changed the message\n in: %s\nout: %s", compact(in), out)
			}
		})
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	_ = json.Compact(&buf, b)
	return buf.String()
}

func TestDecodeKnownAndUnknownFields(t *testing.T) {
	in, err := os.ReadFile("testdata/egress_chat.json")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"egress.type", e.Egress.Type, EgressChat},
		{"egress.destination", e.Egress.Destination, "internal.egress.v1.ingress-egress-abc"},
		{"candidates", len(e.Candidates), 2},
		{"candidate priority", e.Candidates[1].Priority, 1.0},
		{"routing attempt", *e.RoutingSlip[0].Attempt, 1},
		{"routing error retryable", *e.RoutingSlip[1].Error.Retryable, true},
		{"qos ttl", *e.QOS.TTL, 3600.0},
		{"auth matched", e.Auth.Matched, true},
		{"unknown top-level", string(e.Extra["ingressAt"]), `"2026-11-21T12:00:00.000Z"`},
		{"unknown in egress", string(e.Egress.Extra["priority"]), `"high"`},
		{"unknown in candidate", string(e.Candidates[1].Extra["tokens"]), `3`},
		{"unknown in routing error", string(e.RoutingSlip[1].Error.Extra["hint"]), `"kept"`},
		{"unknown in qos", string(e.QOS.Extra["tracer"]), `true`},
		{"no extra for known", e.Extra["candidates"] == nil, true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEncodeOmitsAbsentOptionals(t *testing.T) {
	e := InternalEventV2{V: Version, Source: "s", CorrelationID: "c", Type: "t"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":"1","source":"s","correlationId":"c","type":"t"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestDecodeBadInput(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		code string
	}{
		{"not json", []byte("hello"), "EVENT_NOT_JSON"},
		{"array", []byte("[1,2]"), "EVENT_NOT_OBJECT"},
		{"truncated", []byte(`{"v":"1",`), "EVENT_NOT_JSON"},
		{"wrong type", []byte(`{"v":1}`), "EVENT_BAD_FIELD"},
		{"wrong nested type", []byte(`{"candidates":[{"priority":"high"}]}`), "EVENT_BAD_FIELD"},
		{"oversized", append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), MaxEventBytes)...), '"', '}'), "EVENT_TOO_LARGE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in)
			var fe *fault.Error
			if !errors.As(err, &fe) {
				t.Fatalf("want *fault.Error, got %v", err)
			}
			if fe.Kind != fault.Invalid || fe.Code != c.code {
				t.Errorf("got %v/%s, want invalid/%s (%v)", fe.Kind, fe.Code, c.code, err)
			}
		})
	}
}

func TestCorrelationIDForEventSubIsDeterministic(t *testing.T) {
	a := CorrelationIDForEventSub("befa7b53-d79d-478f-86b9-120f112b044e")
	b := CorrelationIDForEventSub("befa7b53-d79d-478f-86b9-120f112b044e")
	c := CorrelationIDForEventSub("befa7b53-d79d-478f-86b9-120f112b044f")
	if a != b || a == c {
		t.Fatalf("ids: %s %s %s", a, b, c)
	}
	if len(a) != 36 || a[14] != '5' {
		t.Errorf("want a v5 UUID, got %s", a)
	}
}

func TestPrefixAndAttributes(t *testing.T) {
	if got := Prefix("prod.").Topic(TopicIngress); got != "prod.internal.ingress.v1" {
		t.Errorf("prefix: %s", got)
	}
	if got := Prefix("").Topic(EgressInstanceTopic("abc")); got != "internal.egress.v1.abc" {
		t.Errorf("instance topic: %s", got)
	}
	e := &InternalEventV2{Type: TypeTwitchEventSub, CorrelationID: "c1", Source: SourceEventSubIngress, Channel: "#x"}
	want := map[string]string{"type": TypeTwitchEventSub, "correlationid": "c1", "idempotencykey": "c1", "source": SourceEventSubIngress, "channel": "#x"}
	if got := Attributes(e); !reflect.DeepEqual(got, want) {
		t.Errorf("attributes = %v, want %v", got, want)
	}
}

func TestDeadLetterKeepsOriginal(t *testing.T) {
	cause := fault.New(fault.Invalid, "EVENTSUB_NOT_JSON", "bad frame")
	d := NewDeadLetter("src", "cid", "twitch.eventsub.raw", "not JSON", cause, []byte{0xff, 0x00, 'x'})
	if string(d.Original) != `"/wB4"` {
		t.Errorf("binary original = %s", d.Original)
	}
	if d.Payload.Error.Code != "EVENTSUB_NOT_JSON" || d.Type != TypeDeadLetter {
		t.Errorf("dead letter = %+v", d)
	}
	d = NewDeadLetter("src", "cid", "t", "r", nil, []byte(`{"a":1}`))
	if string(d.Original) != `{"a":1}` || d.Payload.Error.Code != "UNPROCESSABLE" {
		t.Errorf("json original = %s / %s", d.Original, d.Payload.Error.Code)
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"candidates":[{"confidence":null}],"egress":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("decode error not classified invalid: %v", err)
			}
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode a decoded event: %v", err)
		}
		if hand, _ := e.MarshalJSON(); !bytes.Equal(hand, codecEncoding(t, e)) {
			t.Fatalf("hand encoder differs from the codec\nhand:  %s\ncodec: %s", hand, codecEncoding(t, e))
		}
		if _, err := Decode(out); err != nil {
			t.Fatalf("decode our own encoding: %v\n%s", err, out)
		}
	})
}

// codecEncoding is what the codec writes for e; the hand-written encoder must match it.
func codecEncoding(t testing.TB, e *InternalEventV2) []byte {
	t.Helper()
	b, err := marshalKeep((*internalEventV2Plain)(e))
	if err != nil {
		t.Fatalf("codec encode: %v", err)
	}
	return b
}

func TestHandEncoderMatchesCodec(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	inputs := map[string][]byte{}
	for _, f := range files {
		if b := filepath.Base(f); !strings.HasPrefix(b, "finalize_") && !strings.HasPrefix(b, "deadletter") {
			inputs[b], _ = os.ReadFile(f)
		}
	}
	for name, in := range map[string]string{
		"escapes and non-ASCII": `{"v":"1","source":"s\"\\\n\t\u0001","correlationId":"é😀\u2028<&>","type":"t","channel":"#x"}`,
		"invalid UTF-8":         "{\"v\":\"1\",\"source\":\"a\xffb\",\"correlationId\":\"c\",\"type\":\"t\",\"x\xfe\":1}",
		"empty objects kept":    `{"v":"1","source":"s","correlationId":"c","type":"t","egress":{"destination":""},"qos":{},"user":{"id":""},"payload":{},"routingSlip":[],"candidates":[]}`,
		"raw with whitespace":   `{"v":"1","source":"s","correlationId":"c","type":"t","externalEvent":{"id":"i","source":"s","kind":"k","version":"1","createdAt":"now","payload" : { "a" : [ 1 , 2 ] } ,"rawPayload":null, "z":{ }, "a" : 1e3 }}`,
		"extra at the top":      `{"zeta":true,"v":"1","alpha":[1, {"b":2}],"source":"s","correlationId":"c","type":"t","":"empty key"}`,
	} {
		inputs[name] = []byte(in)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			e, err := Decode(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if want := codecEncoding(t, e); !bytes.Equal(got, want) {
				t.Errorf("hand encoder differs from the codec\nhand:  %s\ncodec: %s", got, want)
			}
			if !jsonEqual(t, got, codecEncoding(t, e)) || !json.Valid(got) {
				t.Errorf("invalid output %s", got)
			}
		})
	}
}

// TestRoundTripKeepsEmptyMembers: an empty object or list another service sent comes
// back out (encoding/json/v2's omitempty would drop `{}`; the pointers are omitzero).
func TestRoundTripKeepsEmptyMembers(t *testing.T) {
	in := []byte(`{"v":"1","source":"s","correlationId":"c","type":"t","qos":{},"egress":{"destination":"d","x":{}},"payload":{},"candidates":[],"routingSlip":[{"id":"r","status":"OK","attempt":0,"error":{"code":"E","retryable":false}}]}`)
	e, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, in, out) {
		t.Errorf("round trip changed the event\n in: %s\nout: %s", in, out)
	}
}

func TestCorrelationIDForEventSubIsUUIDv5(t *testing.T) {
	for _, id := range []string{"", "befa7b53-d79d-478f-86b9-120f112b044e", strings.Repeat("x", 300), "é"} {
		want := uuid.NewSHA1(eventSubNamespace, []byte("twitch.eventsub:"+id)).String()
		if got := CorrelationIDForEventSub(id); got != want {
			t.Errorf("CorrelationIDForEventSub(%q) = %s, want %s", id, got, want)
		}
	}
}
