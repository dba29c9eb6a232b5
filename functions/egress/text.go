package egress

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bitbrat/twitch-edge/shared/event"
)

// Twitch's length limits, in characters (Unicode code points, as Twitch counts them;
// a byte count would cut emoji and accented text short).
const (
	// ChatMaxChars is Send Chat Message's limit; longer text is split into parts.
	ChatMaxChars = 500
	// WhisperFirstTimeMaxChars is Send Whisper's limit to a first-time recipient.
	WhisperFirstTimeMaxChars = 500
	// WhisperMaxChars is Send Whisper's limit otherwise.
	WhisperMaxChars = 10000
)

// Where the delivered text came from (Selection.Source).
const (
	SourceCandidate       = "candidate"
	SourcePayloadText     = "payload.text"
	SourcePayloadChatText = "payload.chat.text"
)

// Selection is the text chosen for delivery.
type Selection struct {
	Text string
	// Source says where Text came from: SourceCandidate, SourcePayloadText or
	// SourcePayloadChatText.
	Source string
	// CandidateID is the chosen candidate's id (SourceCandidate only).
	CandidateID string
}

// SelectText picks the text to deliver for e (CONTRACT.md "Egress"): the best
// candidate — lowest priority, then highest confidence (missing counts as -1), then
// first in order — with up to two layers of wrapping quotes removed and whitespace
// trimmed; without a candidate, payload.text, then payload.chat.text. Candidates whose
// text is empty once cleaned are passed over (there is nothing to send), and the
// payload fallbacks get the same clean-up. ok is false when there is no text at all.
func SelectText(e *event.InternalEventV2) (sel Selection, ok bool) {
	best := -1
	var bestText string
	for i := range e.Candidates {
		c := &e.Candidates[i]
		text := StripQuotes(c.Text)
		if text == "" {
			continue
		}
		if best < 0 || better(c, &e.Candidates[best]) {
			best, bestText = i, text
		}
	}
	if best >= 0 {
		return Selection{Text: bestText, Source: SourceCandidate, CandidateID: e.Candidates[best].ID}, true
	}
	if len(e.Payload) == 0 {
		return Selection{}, false
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(e.Payload, &p) != nil {
		return Selection{}, false // not an object: no text
	}
	if t := jsonText(p["text"]); t != "" {
		return Selection{Text: t, Source: SourcePayloadText}, true
	}
	var chat map[string]json.RawMessage
	if json.Unmarshal(p["chat"], &chat) == nil {
		if t := jsonText(chat["text"]); t != "" {
			return Selection{Text: t, Source: SourcePayloadChatText}, true
		}
	}
	return Selection{}, false
}

// better reports whether candidate a ranks before b (b came first in order, so ties
// keep b).
func better(a, b *event.CandidateV1) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return confidence(a) > confidence(b)
}

func confidence(c *event.CandidateV1) float64 {
	if c.Confidence == nil {
		return -1
	}
	return *c.Confidence
}

// jsonText is the cleaned text of a JSON string, "" for anything else.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return StripQuotes(s)
}

// StripQuotes trims whitespace and removes up to two layers of quotes wrapping the
// whole text (language models like to quote their answers): "…", '…', `…`, “…”,
// ‘…’ (curly quotes in either orientation, since models mix them up). A double quote
// or backtick pair is only a wrapper when the text inside has no other quote of the
// same kind: `"Hi" and "bye"` is two quotations, not one quoted text. Single quotes
// are not checked that way, because apostrophes ("it's") are common inside.
func StripQuotes(s string) string {
	s = strings.TrimSpace(s)
	for layer := 0; layer < 2; layer++ {
		inner, ok := unwrap(s)
		if !ok {
			break
		}
		s = strings.TrimSpace(inner)
	}
	return s
}

func unwrap(s string) (string, bool) {
	if len(s) < 2 {
		return "", false
	}
	first, n1 := utf8.DecodeRuneInString(s)
	last, n2 := utf8.DecodeLastRuneInString(s)
	if n1+n2 > len(s) {
		return "", false // one rune only
	}
	inner := s[n1 : len(s)-n2]
	switch {
	case first == '"' && last == '"':
		return inner, !strings.ContainsRune(inner, '"')
	case first == '`' && last == '`':
		return inner, !strings.ContainsRune(inner, '`')
	case isCurlyDouble(first) && isCurlyDouble(last):
		return inner, !strings.ContainsAny(inner, "“”")
	case first == '\'' && last == '\'':
		return inner, true
	case isCurlySingle(first) && isCurlySingle(last):
		return inner, true
	}
	return "", false
}

func isCurlyDouble(r rune) bool { return r == '“' || r == '”' }
func isCurlySingle(r rune) bool { return r == '‘' || r == '’' }

// Ellipsis ends text that was cut short, so the reader sees that it was.
const Ellipsis = "…"

// SplitText splits s into parts of at most maxChars characters, breaking at the last
// whitespace that fits (a word longer than a whole part is cut). At most maxParts parts
// are made; when the text does not fit in them, the last part is truncated (see
// Truncate) and truncated is true. Parts are trimmed and never empty; an empty or blank
// s gives no parts.
func SplitText(s string, maxChars, maxParts int) (parts []string, truncated bool) {
	s = strings.TrimSpace(s)
	if maxChars < 1 || maxParts < 1 {
		return nil, s != ""
	}
	for s != "" {
		if len(parts) == maxParts-1 {
			last, cut := Truncate(s, maxChars)
			return append(parts, last), cut
		}
		cut := runeOffset(s, maxChars)
		if cut == len(s) {
			return append(parts, s), false
		}
		head := s[:cut]
		next, _ := utf8.DecodeRuneInString(s[cut:])
		if !unicode.IsSpace(next) {
			if i := lastSpace(head); i > 0 {
				head = head[:i]
			}
		}
		parts = append(parts, strings.TrimRightFunc(head, unicode.IsSpace))
		s = strings.TrimLeftFunc(s[len(head):], unicode.IsSpace)
	}
	return parts, false
}

// Truncate shortens s to at most maxChars characters, ending at a word boundary where
// there is one and with Ellipsis appended; cut says whether it did. s is returned
// unchanged (trimmed) when it fits.
func Truncate(s string, maxChars int) (out string, cut bool) {
	s = strings.TrimSpace(s)
	if runeOffset(s, maxChars) == len(s) {
		return s, false
	}
	if maxChars <= 1 {
		if maxChars < 1 {
			return "", true
		}
		return Ellipsis, true
	}
	end := runeOffset(s, maxChars-1) // room for the ellipsis
	head := s[:end]
	next, _ := utf8.DecodeRuneInString(s[end:])
	if !unicode.IsSpace(next) {
		// Break at a word boundary unless that would throw away most of the text
		// (one enormous word, a URL).
		if i := lastSpace(head); i > len(head)/2 {
			head = head[:i]
		}
	}
	return strings.TrimRightFunc(head, unicode.IsSpace) + Ellipsis, true
}

// runeOffset is the byte offset just after the first n runes of s (len(s) when s has
// n runes or fewer).
func runeOffset(s string, n int) int {
	if len(s) <= n {
		return len(s) // at most n bytes, so at most n runes
	}
	i := 0
	for k := 0; k < n; k++ {
		if i >= len(s) {
			return len(s)
		}
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// lastSpace is the byte index of the last whitespace rune in s, -1 if none.
func lastSpace(s string) int {
	return strings.LastIndexFunc(s, unicode.IsSpace)
}

// CharCount counts characters the way Twitch limits them.
func CharCount(s string) int { return utf8.RuneCountInString(s) }
