package bus

import (
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

func TestCheckMessage(t *testing.T) {
	many := map[string]string{}
	for i := range MaxAttributes + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	for _, c := range []struct {
		name  string
		data  []byte
		attrs map[string]string
		code  string // "" when Pub/Sub takes it
	}{
		{"ordinary", []byte(`{}`), map[string]string{"a": "b"}, ""},
		{"value at the limit", nil, map[string]string{"a": strings.Repeat("v", MaxAttrValueBytes)}, ""},
		{"value over the limit", nil, map[string]string{"a": strings.Repeat("v", MaxAttrValueBytes+1)}, CodeAttributeTooLarge},
		{"key over the limit", nil, map[string]string{strings.Repeat("k", MaxAttrKeyBytes+1): "v"}, CodeAttributeTooLarge},
		{"too many attributes", nil, many, CodeAttributeTooLarge},
		{"data at the limit", make([]byte, MaxMessageBytes), nil, ""},
		{"data over the limit", make([]byte, MaxMessageBytes+1), nil, CodeMessageTooLarge},
		{"attributes tip it over", make([]byte, MaxMessageBytes-1), map[string]string{"a": "b"}, CodeMessageTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckMessage(c.data, c.attrs)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err, "") != c.code {
				t.Fatalf("err %v, want invalid %s", err, c.code)
			}
		})
	}
}
