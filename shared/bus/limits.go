package bus

import "github.com/bitbrat/twitch-edge/shared/fault"

// Pub/Sub's limits on one message (the service's quotas page). A message over them is
// refused for good, so it is invalid input, never retried.
const (
	MaxMessageBytes   = 10_000_000 // data plus attributes
	MaxAttributes     = 100
	MaxAttrKeyBytes   = 256
	MaxAttrValueBytes = 1024
)

// Error codes of messages Pub/Sub would refuse.
const (
	CodeMessageTooLarge   = "PUBSUB_MESSAGE_TOO_LARGE"
	CodeAttributeTooLarge = "PUBSUB_ATTRIBUTE_TOO_LARGE"
)

// CheckMessage reports, as fault.Invalid, a message Pub/Sub would refuse for its
// size: checked before publishing, so the answer does not depend on what the emulator
// or the client's bundler happen to enforce.
func CheckMessage(data []byte, attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return fault.New(fault.Invalid, CodeAttributeTooLarge, "%d attributes, limit %d", len(attrs), MaxAttributes)
	}
	size := len(data)
	for k, v := range attrs {
		if len(k) > MaxAttrKeyBytes {
			return fault.New(fault.Invalid, CodeAttributeTooLarge, "attribute key of %d bytes, limit %d", len(k), MaxAttrKeyBytes)
		}
		if len(v) > MaxAttrValueBytes {
			return fault.New(fault.Invalid, CodeAttributeTooLarge, "attribute %s of %d bytes, limit %d", k, len(v), MaxAttrValueBytes)
		}
		size += len(k) + len(v)
	}
	if size > MaxMessageBytes {
		return fault.New(fault.Invalid, CodeMessageTooLarge, "message of %d bytes, limit %d", size, MaxMessageBytes)
	}
	return nil
}
