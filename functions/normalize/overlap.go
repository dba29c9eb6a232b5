package normalize

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// During a make-before-break hand-off between connector instances (connector/
// handoff.go) Twitch sends each event to both instances' sessions, and each
// session's subscription gets its own message_id: the message-id claim would publish
// both. The connector marks the frames it forwards during that overlap
// (event.AttrEventSubOverlap), and those are claimed by content instead: the
// subscription's type, version and condition and the event, which are the same in
// both copies. Unmarked frames keep the message-id claim, so the ordinary path costs
// nothing more. Two distinct events with identical content during one hand-off (a
// few seconds) would count as one; Twitch's events carry ids or timestamps that make
// that not happen for the types this edge subscribes to.

// claimKey is the ledger key of the notification in m whose EventSub message id is
// messageID.
func claimKey(m trigger.Message, messageID string) (string, error) {
	if m.Attributes[event.AttrEventSubOverlap] == "" {
		return "eventsub:" + messageID, nil
	}
	k, err := ContentKey(m.Data)
	if err != nil {
		return "", err
	}
	return "eventsub-content:" + k, nil
}

// ContentKey is the hex SHA-256 of a notification frame's subscription type, version
// and condition and its event, each in a canonical form (the two copies of one event
// may not be byte-identical: key order and spacing are Twitch's to choose). Errors
// are fault.Invalid.
func ContentKey(frame []byte) (string, error) {
	var msg struct {
		Payload struct {
			Subscription struct {
				Type      string          `json:"type"`
				Version   string          `json:"version"`
				Condition json.RawMessage `json:"condition"`
			} `json:"subscription"`
			Event json.RawMessage `json:"event"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(frame, &msg); err != nil {
		return "", fault.Wrap(fault.Invalid, twitch.CodeBadFrame, err, "decode eventsub notification for its content key")
	}
	sub := msg.Payload.Subscription
	cond, err := canonical(sub.Condition)
	if err != nil {
		return "", fault.Wrap(fault.Invalid, twitch.CodeBadFrame, err, "canonical condition")
	}
	ev, err := canonical(msg.Payload.Event)
	if err != nil {
		return "", fault.Wrap(fault.Invalid, "EVENTSUB_BAD_EVENT", err, "canonical event")
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(sub.Type), []byte(sub.Version), cond, ev} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// canonical re-encodes a JSON value with sorted object keys, no spacing and numbers
// as written.
func canonical(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v) // encoding/json sorts map keys
}
