package egress

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func f64(v float64) *float64 { return &v }

func TestSelectText(t *testing.T) {
	cand := func(id string, prio float64, conf *float64, text string) event.CandidateV1 {
		return event.CandidateV1{ID: id, Kind: "text", Priority: prio, Confidence: conf, Text: text}
	}
	for _, tc := range []struct {
		name       string
		candidates []event.CandidateV1
		payload    string
		want       Selection
		ok         bool
	}{
		{"lowest priority wins", []event.CandidateV1{cand("a", 2, f64(0.9), "two"), cand("b", 1, f64(0.1), "one")}, "",
			Selection{"one", SourceCandidate, "b"}, true},
		{"then highest confidence", []event.CandidateV1{cand("a", 1, f64(0.5), "half"), cand("b", 1, f64(0.8), "most")}, "",
			Selection{"most", SourceCandidate, "b"}, true},
		{"missing confidence is -1", []event.CandidateV1{cand("a", 1, nil, "none"), cand("b", 1, f64(-0.5), "negative")}, "",
			Selection{"negative", SourceCandidate, "b"}, true},
		{"missing confidence loses to zero", []event.CandidateV1{cand("a", 1, nil, "none"), cand("b", 1, f64(0), "zero")}, "",
			Selection{"zero", SourceCandidate, "b"}, true},
		{"then first in order", []event.CandidateV1{cand("a", 1, f64(0.5), "first"), cand("b", 1, f64(0.5), "second")}, "",
			Selection{"first", SourceCandidate, "a"}, true},
		{"negative priority", []event.CandidateV1{cand("a", 0, nil, "zero"), cand("b", -1, nil, "minus")}, "",
			Selection{"minus", SourceCandidate, "b"}, true},
		{"empty candidate passed over", []event.CandidateV1{cand("a", 0, nil, ` " " `), cand("b", 5, nil, "real")}, `{"text":"payload"}`,
			Selection{"real", SourceCandidate, "b"}, true},
		{"quotes stripped", []event.CandidateV1{cand("a", 1, nil, "  \"'Hello there'\"  ")}, "",
			Selection{"Hello there", SourceCandidate, "a"}, true},
		{"payload.text", nil, `{"text":"  from payload ", "chat":{"text":"chat"}}`, Selection{"from payload", SourcePayloadText, ""}, true},
		{"payload.chat.text", nil, `{"text":"", "chat":{"text":"“from chat”"}}`, Selection{"from chat", SourcePayloadChatText, ""}, true},
		{"payload.text not a string", nil, `{"text":42, "chat":{"text":"chat"}}`, Selection{"chat", SourcePayloadChatText, ""}, true},
		{"payload.chat not an object", nil, `{"chat":"text"}`, Selection{}, false},
		{"payload not an object", nil, `"text"`, Selection{}, false},
		{"payload null", nil, `null`, Selection{}, false},
		{"nothing", nil, "", Selection{}, false},
		{"only blank text", []event.CandidateV1{cand("a", 1, nil, "   ")}, `{"text":"''"}`, Selection{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &event.InternalEventV2{Candidates: tc.candidates}
			if tc.payload != "" {
				e.Payload = json.RawMessage(tc.payload)
			}
			got, ok := SelectText(e)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("got %+v, %t; want %+v, %t", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestStripQuotes(t *testing.T) {
	for in, want := range map[string]string{
		`"hi"`:                   "hi",
		`'hi'`:                   "hi",
		"`hi`":                   "hi",
		`“hi”`:                   "hi",
		`‘hi’`:                   "hi",
		`”hi”`:                   "hi", // models mix up curly quotes
		`  " 'hi' "  `:           "hi",
		`"'“three”'"`:            "“three”", // two layers at most
		`"hi`:                    `"hi`,
		`"`:                      `"`,
		`""`:                     "",
		`"Hi" and "bye"`:         `"Hi" and "bye"`, // two quotations, not a wrapper
		`'it's fine'`:            "it's fine",
		"“a” “b”":                "“a” “b”",
		"`a` and `b`":            "`a` and `b`",
		`'mixed"`:                `'mixed"`,
		"  plain text\n":         "plain text",
		`"the ‘inner’ is kept"`:  "the ‘inner’ is kept",
		`"“nested” and more"`:    "“nested” and more",
		"\"\u00a0spaced\u00a0\"": "spaced",
		"\"emoji 😀\"":            "emoji 😀",
	} {
		if got := StripQuotes(in); got != want {
			t.Errorf("StripQuotes(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitText(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		max, n    int
		want      []string
		truncated bool
	}{
		{"fits", "hello world", 11, 5, []string{"hello world"}, false},
		{"blank", "   ", 10, 5, nil, false},
		{"at a space", "aaa bbb ccc", 7, 5, []string{"aaa bbb", "ccc"}, false},
		{"before a word", "aaa bbbb", 5, 5, []string{"aaa", "bbbb"}, false},
		{"long word is cut", "abcdefghij", 4, 5, []string{"abcd", "efgh", "ij"}, false},
		{"runes not bytes", "éééé ééé", 4, 5, []string{"éééé", "ééé"}, false},
		{"runs of spaces", "aa   \n  bb", 3, 5, []string{"aa", "bb"}, false},
		{"too many parts", "aa bb cc dd", 2, 2, []string{"aa", "b…"}, true},
		{"last part fits", "aa bb", 2, 2, []string{"aa", "bb"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated := SplitText(tc.in, tc.max, tc.n)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) || truncated != tc.truncated {
				t.Fatalf("got %q, %t; want %q, %t", got, truncated, tc.want, tc.truncated)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
		cut  bool
	}{
		{"short", 10, "short", false},
		{"exactly ten", 11, "exactly ten", false},
		{"hello brave new world", 12, "hello brave…", true},
		{"hello wonderful", 10, "hello…", true},
		{"hi wonderfulness", 10, "hi wonder…", true}, // the boundary would lose most of the text
		{"ééééé", 3, "éé…", true},
		{"abc", 1, "…", true},
		{"abc", 0, "", true},
	} {
		got, cut := Truncate(tc.in, tc.max)
		if got != tc.want || cut != tc.cut || CharCount(got) > max(tc.max, 0) {
			t.Errorf("Truncate(%q, %d) = %q, %t; want %q, %t", tc.in, tc.max, got, cut, tc.want, tc.cut)
		}
	}
}

// FuzzEgressText decodes an egress event from arbitrary bytes and, when it decodes,
// selects its text and splits it for chat and truncates it for a whisper: nothing may
// panic, errors must be classified invalid, and every part must respect Twitch's
// limits without losing or inventing text.
func FuzzEgressText(f *testing.F) {
	for _, name := range []string{"egress_chat.json", "egress_dm.json"} {
		b, err := os.ReadFile("../../shared/event/testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"correlationId":"x","egress":{"destination":"d"},"payload":{"chat":{"text":"“‘hi’”"}}}`))
	f.Add([]byte(`{"candidates":[{"priority":1,"text":"` + strings.Repeat("wörd ", 300) + `"},{"priority":1,"confidence":0.5,"text":"'b'"}]}`))
	f.Add([]byte(`{"payload":{"text":"` + strings.Repeat("x", 1200) + `"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := event.Decode(b)
		if err != nil {
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("decode error not invalid: %v", err)
			}
			return
		}
		sel, ok := SelectText(e)
		if !ok {
			if sel != (Selection{}) {
				t.Fatalf("no text but a selection %+v", sel)
			}
			return
		}
		if sel.Text == "" || sel.Text != strings.TrimSpace(sel.Text) {
			t.Fatalf("selected %q", sel.Text)
		}
		parts, truncated := SplitText(sel.Text, ChatMaxChars, DefaultMaxParts)
		if len(parts) == 0 || len(parts) > DefaultMaxParts {
			t.Fatalf("%d parts", len(parts))
		}
		var joined strings.Builder
		for i, p := range parts {
			if p == "" || CharCount(p) > ChatMaxChars {
				t.Fatalf("part %d has %d characters", i, CharCount(p))
			}
			joined.WriteString(p)
		}
		if !truncated && stripSpace(joined.String()) != stripSpace(sel.Text) {
			t.Fatalf("parts do not make the text:\n%q\n%q", parts, sel.Text)
		}
		for _, limit := range []int{WhisperFirstTimeMaxChars, WhisperMaxChars} {
			w, cut := Truncate(sel.Text, limit)
			if CharCount(w) > limit || (!cut && w != sel.Text) || w == "" {
				t.Fatalf("Truncate to %d: %d characters, cut %t", limit, CharCount(w), cut)
			}
		}
	})
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// BenchmarkSelectText measures text selection on a typical event (three candidates,
// quoted text).
func BenchmarkSelectText(b *testing.B) {
	e := &event.InternalEventV2{Candidates: []event.CandidateV1{
		{ID: "a", Priority: 2, Text: `"A fallback answer"`},
		{ID: "b", Priority: 1, Confidence: f64(0.7), Text: `“'The chosen answer, quoted twice.'”`},
		{ID: "c", Priority: 1, Confidence: f64(0.4), Text: "A less confident answer"},
	}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := SelectText(e); !ok {
			b.Fatal("no text")
		}
	}
}

// BenchmarkSplitText measures splitting a 2,000-character multi-byte text into chat
// parts.
func BenchmarkSplitText(b *testing.B) {
	text := strings.TrimSpace(strings.Repeat("héllo wörld, ", 154))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if parts, _ := SplitText(text, ChatMaxChars, DefaultMaxParts); len(parts) < 4 {
			b.Fatalf("%d parts", len(parts))
		}
	}
}
