package event

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Dead letters must always be publishable and always readable: a message too large
// for Pub/Sub (10 MB) or not valid UTF-8 JSON would otherwise be retried forever, or
// break a strict consumer. So the original is embedded whole only up to
// MaxDeadLetterOriginal bytes (as encoded); beyond that the dead letter carries a
// TruncatedOriginal: a prefix, the size and the SHA-256 of the exact bytes.
const (
	// MaxDeadLetterOriginal bounds the encoded original a dead letter embeds whole.
	MaxDeadLetterOriginal = 1 << 20
	// DeadLetterPrefixBytes is how much of a truncated original is kept.
	DeadLetterPrefixBytes = 4096
)

// TruncatedOriginal stands for an original too large to embed (the dead letter's
// payload.originalTruncated is then true).
type TruncatedOriginal struct {
	// SizeBytes is the original's length in bytes.
	SizeBytes int `json:"sizeBytes"`
	// SHA256 is the hex SHA-256 of the original bytes, to match it against the
	// topic's retained messages.
	SHA256 string `json:"sha256"`
	// Prefix is the first DeadLetterPrefixBytes of the original, cut at a character
	// boundary, invalid UTF-8 replaced by U+FFFD.
	Prefix string `json:"prefix"`
}

// OriginalJSON keeps b as JSON when it is valid UTF-8 JSON (json.Valid alone accepts
// invalid UTF-8 inside strings), and as a base64 JSON string otherwise, so a dead
// letter carries the exact input. Size is not bounded here; NewDeadLetter bounds it.
func OriginalJSON(b []byte) json.RawMessage {
	if len(b) > 0 && utf8.Valid(b) && json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
	return s
}

// originalOrDigest is OriginalJSON(b), or a TruncatedOriginal when that would be
// larger than MaxDeadLetterOriginal.
func originalOrDigest(b []byte) (json.RawMessage, bool) {
	if base64.StdEncoding.EncodedLen(len(b))+2 <= MaxDeadLetterOriginal || len(b) <= MaxDeadLetterOriginal && utf8.Valid(b) && json.Valid(b) {
		return OriginalJSON(b), false
	}
	sum := sha256.Sum256(b)
	prefix := b[:min(len(b), DeadLetterPrefixBytes)]
	n := len(prefix)
	for n > 0 && n < len(b) && !utf8.RuneStart(b[n]) {
		n-- // do not split a character at the cut
	}
	t := TruncatedOriginal{SizeBytes: len(b), SHA256: hex.EncodeToString(sum[:]),
		Prefix: strings.ToValidUTF8(string(prefix[:n]), "\uFFFD")}
	out, _ := json.Marshal(t)
	return out, true
}
