package twitch

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// errSlowPath makes scanMetadata hand the frame to encoding/json: for the rare frames
// whose keys are escaped or not ASCII, matching encoding/json's key folding by hand is
// not worth the risk.
var errSlowPath = errors.New("slow path")

// scanMetadata reads the "metadata" object of a frame without decoding anything else.
// json.Valid first guarantees the frame is valid JSON (so the scanner below only has
// to skip values, not validate them) and keeps ParseMetadata's verdict identical to
// json.Unmarshal's. Keys match case-insensitively and the last duplicate wins, as in
// encoding/json.
func scanMetadata(b []byte) (Metadata, error) {
	if !json.Valid(b) {
		return metadataSlow(b)
	}
	md, err := scanMetadataValid(b)
	if errors.Is(err, errSlowPath) {
		return metadataSlow(b)
	}
	return md, err
}

func metadataSlow(b []byte) (Metadata, error) {
	var m struct {
		Metadata Metadata `json:"metadata"`
	}
	err := json.Unmarshal(b, &m)
	return m.Metadata, err
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str returns the raw bytes of the string at the cursor, quotes included.
func (s *scanner) str() []byte {
	start := s.i
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return s.b[start:s.i]
		default:
			s.i++
		}
	}
	return s.b[start:]
}

// skip moves past the value at the cursor (the input is known to be valid JSON).
func (s *scanner) skip() {
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			s.str()
			if depth == 0 {
				return
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return
			}
		case ',':
			if depth == 0 {
				return
			}
		case ' ', '\t', '\n', '\r':
		default:
			if depth == 0 {
				// A number, true, false or null: up to the next delimiter.
				for s.i < len(s.b) && !bytes.ContainsRune([]byte(",}] \t\n\r"), rune(s.b[s.i])) {
					s.i++
				}
				return
			}
		}
		s.i++
	}
}

// key reads an object key and its colon; errSlowPath for escaped or non-ASCII keys.
func (s *scanner) key() ([]byte, error) {
	k := s.str()
	s.ws()
	s.i++ // ':'
	inner := k[1 : len(k)-1]
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			return nil, errSlowPath
		}
	}
	return inner, nil
}

var errNotObject = errors.New("eventsub frame: metadata is not an object")

func scanMetadataValid(b []byte) (Metadata, error) {
	var md Metadata
	s := &scanner{b: b}
	if s.peek() != '{' {
		// null decodes to nothing; anything else cannot become the struct.
		if s.peek() == 'n' {
			return md, nil
		}
		return md, errNotObject
	}
	s.i++
	for s.peek() != '}' {
		k, err := s.key()
		if err != nil {
			return md, err
		}
		s.ws()
		if bytes.EqualFold(k, []byte("metadata")) {
			if err := s.metadataObject(&md); err != nil {
				return md, err
			}
		} else {
			s.skip()
		}
		if s.peek() == ',' {
			s.i++
		}
	}
	return md, nil
}

func (s *scanner) metadataObject(md *Metadata) error {
	switch s.peek() {
	case 'n':
		s.skip()
		return nil
	case '{':
	default:
		return errNotObject
	}
	s.i++
	for s.peek() != '}' {
		k, err := s.key()
		if err != nil {
			return err
		}
		s.ws()
		var dst *string
		switch {
		case bytes.EqualFold(k, []byte("message_id")):
			dst = &md.MessageID
		case bytes.EqualFold(k, []byte("message_type")):
			dst = &md.MessageType
		case bytes.EqualFold(k, []byte("subscription_type")):
			dst = &md.SubscriptionType
		case bytes.EqualFold(k, []byte("subscription_version")):
			dst = &md.SubscriptionVersion
		case bytes.EqualFold(k, []byte("message_timestamp")):
			start := s.i
			s.skip()
			if err := md.MessageTimestamp.UnmarshalJSON(s.b[start:s.i]); err != nil {
				return err
			}
		default:
			s.skip()
		}
		if dst != nil {
			start := s.i
			s.skip()
			if err := setString(dst, s.b[start:s.i]); err != nil {
				return err
			}
		}
		if s.peek() == ',' {
			s.i++
		}
	}
	s.i++
	return nil
}

var errNotString = errors.New("eventsub frame: metadata field is not a string")

// setString assigns a raw JSON value to a string field as encoding/json would: null
// leaves it alone, escapes and invalid UTF-8 go through encoding/json.
func setString(dst *string, raw []byte) error {
	if len(raw) == 0 {
		return errNotString
	}
	switch raw[0] {
	case 'n':
		return nil
	case '"':
	default:
		return errNotString
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return json.Unmarshal(raw, dst)
	}
	*dst = string(inner)
	return nil
}
