package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every dead letter is valid UTF-8 JSON that fits in a Pub/Sub message, whatever the
// original was.
func TestDeadLetterIsAlwaysPublishableUTF8JSON(t *testing.T) {
	big := bytes.Repeat([]byte(`{"k":"`+strings.Repeat("é", 100)+`"}`), 60000) // ≈ 12 MB, not one JSON value
	bigJSON := []byte(`{"text":"` + strings.Repeat("x", 9_900_000) + `"}`)
	for _, tc := range []struct {
		name      string
		original  []byte
		truncated bool
		whole     string // the embedded original, when kept whole
	}{
		{"JSON kept as is", []byte(`{"a":1}`), false, `{"a":1}`},
		// json.Valid accepts invalid UTF-8 inside a string; a strict reader does not.
		{"JSON with invalid UTF-8 goes base64", []byte("{\"a\":\"\xff\xfe\"}"), false, `"eyJhIjoi//4ifQ=="`},
		{"binary goes base64", []byte{0xff, 0x00, 'x'}, false, `"/wB4"`},
		{"9.9 MB JSON is truncated", bigJSON, true, ""},
		{"12 MB of anything is truncated", big, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDeadLetter("src", "cid", "t", "reason \xff", nil, tc.original)
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(b) || !json.Valid(b) || len(b) > 2*MaxDeadLetterOriginal {
				t.Fatalf("dead letter: utf8=%t json=%t size=%d", utf8.Valid(b), json.Valid(b), len(b))
			}
			if d.Payload.OriginalTruncated != tc.truncated {
				t.Fatalf("originalTruncated = %t", d.Payload.OriginalTruncated)
			}
			if !tc.truncated {
				if string(d.Original) != tc.whole {
					t.Fatalf("original = %s, want %s", d.Original, tc.whole)
				}
				return
			}
			var to TruncatedOriginal
			if err := json.Unmarshal(d.Original, &to); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tc.original)
			if to.SizeBytes != len(tc.original) || to.SHA256 != hex.EncodeToString(sum[:]) ||
				len(to.Prefix) > DeadLetterPrefixBytes || !strings.HasPrefix(string(tc.original), to.Prefix) || len(to.Prefix) < DeadLetterPrefixBytes-4 {
				t.Fatalf("truncated original: size %d sha %s prefix %d bytes", to.SizeBytes, to.SHA256, len(to.Prefix))
			}
			if a := DeadLetterAttributes(d); !utf8.ValidString(a["reason"]) {
				t.Fatalf("reason attribute %q is not UTF-8", a["reason"])
			}
		})
	}
}
