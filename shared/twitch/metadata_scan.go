package twitch

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// errSlowPath makes scanMetadata hand the frame to encoding/json: for frames whose
// structure the scanner does not follow (escaped or non-ASCII keys, truncated or
// malformed input), matching encoding/json by hand is not worth the risk.
var errSlowPath = errors.New("slow path")

// scanMetadata reads the "metadata" object of a frame without decoding anything else,
// and without validating the rest of the frame: this runs for every frame the
// connector reads, and validating the whole frame first cost more than everything
// else together. The scanner checks every index it reads and falls back to
// encoding/json on anything it does not follow, so malformed input gets
// encoding/json's verdict; a frame whose metadata is sound but whose payload is
// malformed inside an otherwise balanced structure is accepted here (the connector
// forwards it unchanged, and Normalize dead-letters it). Keys match
// case-insensitively and the last duplicate wins, as in encoding/json.
func scanMetadata(b []byte) (Metadata, error) {
	h, err := scanHeader(b)
	return h.Metadata, err
}

// FrameHeader is what the connector reads from every frame: the metadata and, for a
// notification or revocation, payload.subscription.condition.broadcaster_user_id
// (the relay's Pub/Sub attribute), both in one pass over the frame.
type FrameHeader struct {
	Metadata
	// BroadcasterUserID is "" when the frame has none, or when the path to it is
	// not made of objects ending in a string (as encoding/json would refuse it).
	BroadcasterUserID string
}

// RawAttributes are the Pub/Sub attributes of the notification on the raw topic
// (shared/event names the keys), the same whichever transport brought it: the
// connector's WebSocket relay and the webhook function both publish with these.
func (h FrameHeader) RawAttributes() map[string]string {
	a := make(map[string]string, 6)
	a[event.AttrEventSubMessageID] = h.MessageID
	a[event.AttrEventSubMessageType] = h.MessageType
	a[event.AttrEventSubSubscriptionType] = h.SubscriptionType
	a[event.AttrEventSubSubscriptionVersion] = h.SubscriptionVersion
	a[event.AttrEventSubMessageTimestamp] = h.MessageTimestamp.UTC().Format(time.RFC3339Nano)
	if h.BroadcasterUserID != "" {
		a[event.AttrEventSubBroadcasterID] = h.BroadcasterUserID
	}
	return a
}

// ParseFrameHeader reads a frame's metadata and broadcaster with the scanner that
// decodes nothing else. Errors are ParseMetadata's.
func ParseFrameHeader(frame []byte) (FrameHeader, error) {
	h, err := scanHeader(frame)
	if err != nil {
		return FrameHeader{}, fault.Wrap(fault.Invalid, CodeBadFrame, err, "decode eventsub metadata")
	}
	if h.MessageType == "" || h.MessageID == "" {
		return FrameHeader{}, fault.Wrap(fault.Invalid, CodeBadFrame, errNoMetadata, "decode eventsub metadata")
	}
	return h, nil
}

func scanHeader(b []byte) (FrameHeader, error) {
	h, err := scanHeaderFast(b)
	if errors.Is(err, errSlowPath) {
		md, err := metadataSlow(b)
		return FrameHeader{Metadata: md, BroadcasterUserID: broadcasterSlow(b)}, err
	}
	return h, err
}

func metadataSlow(b []byte) (Metadata, error) {
	var m struct {
		Metadata Metadata `json:"metadata"`
	}
	err := json.Unmarshal(b, &m)
	return m.Metadata, err
}

// broadcasterSlow is the slow path's broadcaster: encoding/json's, "" on any error.
func broadcasterSlow(b []byte) string {
	var h struct {
		Payload struct {
			Subscription struct {
				Condition struct {
					BroadcasterUserID string `json:"broadcaster_user_id"`
				} `json:"condition"`
			} `json:"subscription"`
		} `json:"payload"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Payload.Subscription.Condition.BroadcasterUserID
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

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str returns the raw bytes of the string at the cursor, quotes included; ok is
// false when it is not a string or is not terminated.
func (s *scanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return s.b[start:s.i], true
		default:
			s.i++
		}
	}
	return nil, false
}

// skip moves past the value at the cursor; ok is false when the input ends first or
// the value is not one.
func (s *scanner) skip() bool {
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			if _, ok := s.str(); !ok {
				return false
			}
			if depth == 0 {
				return true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return false // a closing bracket where a value should be
			}
			depth--
			if depth == 0 {
				s.i++
				return true
			}
		case ',', ':':
			if depth == 0 {
				return false
			}
		case ' ', '\t', '\n', '\r':
		default:
			if depth == 0 {
				// A number, true, false or null: up to the next delimiter.
				start := s.i
				for s.i < len(s.b) && !isDelimiter(s.b[s.i]) {
					s.i++
				}
				return s.i > start
			}
		}
		s.i++
	}
	return false
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// key reads an object key and its colon; errSlowPath for escaped or non-ASCII keys
// and for anything that is not `"key":`.
func (s *scanner) key() ([]byte, error) {
	s.ws()
	k, ok := s.str()
	if !ok {
		return nil, errSlowPath
	}
	if s.peek() != ':' {
		return nil, errSlowPath
	}
	s.i++
	inner := k[1 : len(k)-1]
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			return nil, errSlowPath
		}
	}
	return inner, nil
}

// next moves past the separator after a member: true for ',' (another member
// follows), false for '}' (the object ended); errSlowPath for anything else.
func (s *scanner) next() (bool, error) {
	switch s.peek() {
	case ',':
		s.i++
		return true, nil
	case '}':
		s.i++
		return false, nil
	}
	return false, errSlowPath
}

var errNotObject = errors.New("eventsub frame: metadata is not an object")

// broadcasterPath leads from a frame's payload to its subscription's broadcaster.
var broadcasterPath = [][]byte{[]byte("subscription"), []byte("condition"), []byte("broadcaster_user_id")}

func scanHeaderFast(b []byte) (FrameHeader, error) {
	var h FrameHeader
	s := &scanner{b: b}
	// mismatch: a value on the broadcaster's path has a type encoding/json would
	// refuse, so (as encoding/json would) the frame has no broadcaster.
	mismatch := false
	finish := func() (FrameHeader, error) {
		if mismatch {
			h.BroadcasterUserID = ""
		}
		return h, s.end()
	}
	switch s.peek() {
	case '{':
	default:
		return h, errSlowPath // null, or not: encoding/json decides
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return finish()
	}
	for {
		k, err := s.key()
		if err != nil {
			return h, err
		}
		s.ws()
		switch {
		case bytes.EqualFold(k, []byte("metadata")):
			err = s.metadataObject(&h.Metadata)
		case bytes.EqualFold(k, []byte("payload")):
			err = s.pathString(broadcasterPath, &h.BroadcasterUserID, &mismatch)
		default:
			if !s.skip() {
				err = errSlowPath
			}
		}
		if err != nil {
			return h, err
		}
		more, err := s.next()
		if err != nil {
			return h, err
		}
		if !more {
			return finish()
		}
	}
}

// pathString reads the string at path inside the value at the cursor into dst, as
// encoding/json would decode it into nested structs: null leaves dst alone, a value
// of the wrong type sets *mismatch, and the cursor ends past the value.
func (s *scanner) pathString(path [][]byte, dst *string, mismatch *bool) error {
	start := s.i
	if len(path) == 0 {
		if !s.skip() {
			return errSlowPath
		}
		err := setString(dst, s.b[start:s.i])
		if errors.Is(err, errSlowPath) {
			return err
		}
		if err != nil {
			*mismatch = true
		}
		return nil
	}
	switch s.peek() {
	case '{':
	case 'n':
		if !s.skip() || !bytes.Equal(s.b[start:s.i], []byte("null")) {
			return errSlowPath
		}
		return nil
	case '"', '[', 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		*mismatch = true
		if !s.skip() {
			return errSlowPath
		}
		return nil
	default:
		return errSlowPath
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		s.ws()
		if bytes.EqualFold(k, path[0]) {
			if err := s.pathString(path[1:], dst, mismatch); err != nil {
				return err
			}
		} else if !s.skip() {
			return errSlowPath
		}
		more, err := s.next()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// end accepts only white space after the top-level object.
func (s *scanner) end() error {
	if s.peek() != 0 {
		return errSlowPath
	}
	return nil
}

func (s *scanner) metadataObject(md *Metadata) error {
	switch s.peek() {
	case 'n':
		start := s.i
		if !s.skip() || !bytes.Equal(s.b[start:s.i], []byte("null")) {
			return errSlowPath
		}
		return nil
	case '{':
	case '"', '[', 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return errNotObject
	default:
		return errSlowPath
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		s.ws()
		start := s.i
		if !s.skip() {
			return errSlowPath
		}
		raw := s.b[start:s.i]
		switch {
		case bytes.EqualFold(k, []byte("message_id")):
			err = setString(&md.MessageID, raw)
		case bytes.EqualFold(k, []byte("message_type")):
			err = setString(&md.MessageType, raw)
		case bytes.EqualFold(k, []byte("subscription_type")):
			err = setString(&md.SubscriptionType, raw)
		case bytes.EqualFold(k, []byte("subscription_version")):
			err = setString(&md.SubscriptionVersion, raw)
		case bytes.EqualFold(k, []byte("message_timestamp")):
			err = md.MessageTimestamp.UnmarshalJSON(raw)
		}
		if err != nil {
			return err
		}
		more, err := s.next()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
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
		if !bytes.Equal(raw, []byte("null")) {
			return errSlowPath
		}
		return nil
	case '"':
	default:
		return errNotString
	}
	if len(raw) < 2 {
		return errSlowPath
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return json.Unmarshal(raw, dst)
	}
	*dst = string(inner)
	return nil
}
