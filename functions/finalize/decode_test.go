package finalize

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

var published = time.Date(2026, 11, 21, 12, 0, 3, 0, time.UTC)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "event", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFinalizeFixtures(t *testing.T) {
	a, err := Decode(readFixture(t, "finalize_sent.json"), published)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != KindFinalize || a.CorrelationID != "3f2a9c1e-8b7d-4e6f-a5c4-b3d2e1f0a9b8" || a.Status != "SENT" ||
		a.Destination != "internal.egress.v1" || a.ProviderMessageID != "abc-123-def" || a.DeliveredAtRaw != "2026-11-21T12:00:02.000Z" ||
		!a.DeliveredAt.Equal(time.Date(2026, 11, 21, 12, 0, 2, 0, time.UTC)) || len(a.Candidates) != 1 || len(a.Annotations) != 1 || a.TTL != 0 {
		t.Errorf("sent fixture: %+v", a)
	}
	a, err = Decode(readFixture(t, "finalize_failed.json"), published)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != "FAILED" || a.Error == nil || a.Error.Code != "TWITCH_BAD_REQUEST" || len(a.Parts) != 1 || a.Parts[0].Status != "FAILED" {
		t.Errorf("failed fixture: %+v", a)
	}
}

func TestDecodeInternalEventOnFinalizeTopic(t *testing.T) {
	tests := []struct {
		name, in    string
		status      string
		destination string
		at          string
		ttl         time.Duration
		pid         string
	}{
		{"bare event: FINALIZED at publish time, egress destination, qos.ttl",
			`{"v":"1","source":"llm-bot","correlationId":"c-1","type":"llm.response.v1","egress":{"destination":"internal.egress.v1"},
			  "candidates":[{"id":"c","kind":"text","source":"s","createdAt":"2026-11-21T12:00:00Z","status":"selected","priority":0}],"qos":{"ttl":3600}}`,
			StatusFinalized, "internal.egress.v1", "2026-11-21T12:00:03.000Z", time.Hour, ""},
		{"event carrying its outcome members",
			`{"v":"1","source":"s","correlationId":"c-1","type":"t","destination":"d","status":"SENT","providerMessageId":"m","finalizedAt":"2026-11-21T12:00:01Z"}`,
			"SENT", "d", "2026-11-21T12:00:01Z", 0, "m"},
		{"event with an unknown status records FINALIZED",
			`{"v":"1","source":"s","correlationId":"c-1","type":"t","status":"WHATEVER"}`,
			StatusFinalized, "", "2026-11-21T12:00:03.000Z", 0, ""},
		{"status and deliveredAt make it a finalize message even with type and v",
			`{"v":"1","type":"t","correlationId":"c-1","status":"FAILED","deliveredAt":"2026-11-21T12:00:02Z","destination":"d","qos":{"ttl":60}}`,
			"FAILED", "d", "2026-11-21T12:00:02Z", time.Minute, ""},
		{"negative qos.ttl is ignored",
			`{"v":"1","source":"s","correlationId":"c-1","type":"t","qos":{"ttl":-5}}`,
			StatusFinalized, "", "2026-11-21T12:00:03.000Z", 0, ""},
		{"huge qos.ttl is capped",
			`{"v":"1","source":"s","correlationId":"c-1","type":"t","qos":{"ttl":1e300}}`,
			StatusFinalized, "", "2026-11-21T12:00:03.000Z", MaxTTL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Decode([]byte(tt.in), published)
			if err != nil {
				t.Fatal(err)
			}
			if a.CorrelationID != "c-1" || a.Status != tt.status || a.Destination != tt.destination || a.DeliveredAtRaw != tt.at ||
				a.TTL != tt.ttl || a.ProviderMessageID != tt.pid {
				t.Errorf("got %+v", a)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	ok := `"correlationId":"c-1","destination":"d","deliveredAt":"2026-11-21T12:00:02Z","status":"SENT"`
	tests := []struct {
		name, in, code string
		correlationID  string // what the error should still carry
	}{
		{"empty", ``, CodeNotJSON, ""},
		{"not JSON", `hello`, CodeNotJSON, ""},
		{"truncated", `{"correlationId":"c-1",`, CodeNotJSON, ""},
		{"array", `[1,2]`, CodeNotObject, ""},
		{"null", `null`, CodeNotObject, ""},
		{"wrong type", `{"correlationId":5,"status":"SENT","deliveredAt":"2026-11-21T12:00:02Z"}`, CodeBadField, ""},
		{"missing correlationId", `{"destination":"d","deliveredAt":"2026-11-21T12:00:02Z","status":"SENT"}`, CodeMissingCorrelationID, ""},
		{"blank correlationId", `{"correlationId":"  ","deliveredAt":"2026-11-21T12:00:02Z","status":"SENT"}`, CodeMissingCorrelationID, ""},
		{"bad status", `{"correlationId":"c-1","deliveredAt":"2026-11-21T12:00:02Z","status":"DONE"}`, CodeBadStatus, "c-1"},
		{"missing status", `{"correlationId":"c-1","deliveredAt":"2026-11-21T12:00:02Z"}`, CodeBadStatus, "c-1"},
		{"lowercase status", `{"correlationId":"c-1","deliveredAt":"2026-11-21T12:00:02Z","status":"sent"}`, CodeBadStatus, "c-1"},
		{"bad time", `{"correlationId":"c-1","deliveredAt":"yesterday","status":"SENT"}`, CodeBadDeliveredAt, "c-1"},
		{"missing time", `{"correlationId":"c-1","status":"SENT"}`, CodeBadDeliveredAt, "c-1"},
		{"far future time", `{"correlationId":"c-1","deliveredAt":"2030-01-01T00:00:00Z","status":"SENT"}`, CodeBadDeliveredAt, "c-1"},
		{"negative part", `{` + ok + `,"parts":[{"index":-1,"status":"SENT"}]}`, CodeBadPart, "c-1"},
		{"duplicate part", `{` + ok + `,"parts":[{"index":1,"status":"SENT"},{"index":1,"status":"FAILED"}]}`, CodeBadPart, "c-1"},
		{"bad part status", `{` + ok + `,"parts":[{"index":0,"status":"MAYBE"}]}`, CodeBadPart, "c-1"},
		{"too many parts", `{` + ok + `,"parts":[` + strings.Repeat(`{"index":0,"status":"SENT"},`, MaxParts) + `{"index":0,"status":"SENT"}]}`, CodeBadPart, "c-1"},
		{"event without correlationId", `{"v":"1","type":"t","source":"s"}`, CodeMissingCorrelationID, ""},
		{"event with bad field", `{"v":"1","type":"t","source":"s","correlationId":"c","candidates":"x"}`, "EVENT_BAD_FIELD", ""},
		{"event with bad deliveredAt", `{"v":"1","type":"t","correlationId":"c-1","deliveredAt":"soon"}`, CodeBadDeliveredAt, "c-1"},
		{"too large", `{"correlationId":"` + strings.Repeat("x", event.MaxEventBytes) + `"}`, CodeTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Decode([]byte(tt.in), published)
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("err = %v (kind %v), want invalid", err, fault.KindOf(err))
			}
			if got := fault.CodeOf(err, ""); got != tt.code {
				t.Errorf("code = %s, want %s (%v)", got, tt.code, err)
			}
			if a.CorrelationID != tt.correlationID {
				t.Errorf("correlationId = %q, want %q", a.CorrelationID, tt.correlationID)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"finalize_sent.json", "finalize_failed.json", "egress_chat.json", "ingress_follow.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"correlationId":"c","deliveredAt":"2026-11-21T12:00:02Z","status":"SENT","parts":[{"index":1,"status":"SENT"},{"index":0,"status":"FAILED"}],"qos":{"ttl":5}}`))
	f.Add([]byte(`{"v":"1","type":"t","correlationId":"c","status":"FAILED","error":{"code":"X"},"qos":{"ttl":1e308}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data, published)
		if err != nil {
			if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err, "") == "" {
				t.Fatalf("error not classified invalid with a code: %v", err)
			}
			return
		}
		if strings.TrimSpace(a.CorrelationID) == "" {
			t.Fatal("accepted without correlationId")
		}
		if statusRank(a.Status) == 0 || (a.Kind == KindFinalize && a.Status == StatusFinalized) {
			t.Fatalf("accepted status %q for %s", a.Status, a.Kind)
		}
		if a.DeliveredAt.IsZero() || a.DeliveredAt.After(published.Add(MaxFutureSkew)) || a.TTL < 0 || a.TTL > MaxTTL {
			t.Fatalf("accepted deliveredAt %v ttl %v", a.DeliveredAt, a.TTL)
		}
		for i, p := range a.Parts {
			if p.Index < 0 || p.Index >= MaxParts || (i > 0 && a.Parts[i-1].Index >= p.Index) || statusRank(p.Status) < 2 {
				t.Fatalf("accepted parts %+v", a.Parts)
			}
		}
		// Whatever is accepted can be decided, twice without a second write.
		o := Decide(nil, &a, DefaultTTL)
		if o == nil || Decide(o, &a, DefaultTTL) != nil {
			t.Fatal("a decided attempt is not idempotent")
		}
	})
}

func BenchmarkDecodeDecide(b *testing.B) {
	data := readFixture(b, "finalize_sent.json")
	older, err := Decode(readFixture(b, "finalize_failed.json"), published)
	if err != nil {
		b.Fatal(err)
	}
	current := Decide(nil, &older, DefaultTTL)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		a, err := Decode(data, published)
		if err != nil {
			b.Fatal(err)
		}
		if Decide(current, &a, DefaultTTL) == nil {
			b.Fatal("no change")
		}
	}
}
