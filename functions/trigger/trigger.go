// Package trigger turns a Pub/Sub-triggered CloudEvent into a Message for a handler,
// and the handler's error into the function's answer, in one place for all four
// functions:
//
//   - nil: acknowledge.
//   - a retryable error (fault Transient, RateLimited or unclassified): return it, so
//     the framework answers 500 and Pub/Sub redelivers with backoff (bounded by the
//     subscription's dead-letter policy).
//   - any other error (Invalid, Permanent, Auth): the message can never be processed.
//     It is published to the dead-letter topic with its reason and the original, and
//     acknowledged. Only if that publish fails is the error returned, so nothing is
//     lost.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
)

// Message is one Pub/Sub message as a handler sees it.
type Message struct {
	ID          string
	Data        []byte
	Attributes  map[string]string
	PublishTime time.Time
	// Topic is the topic id (not the full name) the message was published to, when the
	// event says (the functions framework takes it from the push URL locally).
	Topic string
}

// Handler processes one message; its error is classified with package fault.
type Handler func(ctx context.Context, m Message) error

// Publisher is what the dead-letter path needs from the bus.
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// DeadLetters publishes unprocessable messages to the dead-letter topic.
type DeadLetters struct {
	Pub    Publisher
	Topic  string // the dead-letter topic id, prefix applied
	Source string // who gave up, e.g. "twitch-edge.normalize"
	// OriginalType describes what the original message was, e.g. "twitch.eventsub.raw".
	OriginalType string
}

// Send publishes the dead letter for m.
func (d DeadLetters) Send(ctx context.Context, m Message, correlationID, reason string, cause error) error {
	dl := event.NewDeadLetter(d.Source, correlationID, d.OriginalType, reason, cause, m.Data)
	b, err := json.Marshal(dl)
	if err == nil {
		_, err = d.Pub.Publish(ctx, d.Topic, b, event.DeadLetterAttributes(dl))
	}
	if err != nil {
		return fmt.Errorf("dead-letter message %s: %w", m.ID, err)
	}
	return nil
}

// pubsubData is the data of a google.cloud.pubsub.topic.v1.messagePublished event.
// Eventarc writes both camelCase and snake_case ids and times; either is accepted.
type pubsubData struct {
	Message struct {
		Data         []byte            `json:"data"`
		Attributes   map[string]string `json:"attributes"`
		MessageID    string            `json:"messageId"`
		MessageIDAlt string            `json:"message_id"`
		PublishTime  time.Time         `json:"publishTime"`
		PublishAlt   time.Time         `json:"publish_time"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// Decode extracts the Pub/Sub message from a CloudEvent. Errors are fault.Invalid.
func Decode(e cloudevent.Event) (Message, error) {
	var d pubsubData
	if err := e.DataAs(&d); err != nil {
		return Message{}, fault.Wrap(fault.Invalid, "NOT_PUBSUB_EVENT", err, "cloudevent %s of type %s is not a Pub/Sub message", e.ID(), e.Type())
	}
	m := Message{
		ID:          firstNonEmpty(d.Message.MessageID, d.Message.MessageIDAlt, e.ID()),
		Data:        d.Message.Data,
		Attributes:  d.Message.Attributes,
		PublishTime: d.Message.PublishTime,
		Topic:       topicID(e.Source()),
	}
	if m.PublishTime.IsZero() {
		m.PublishTime = d.Message.PublishAlt
	}
	if m.PublishTime.IsZero() {
		m.PublishTime = e.Time()
	}
	return m, nil
}

// topicID extracts T from "//pubsub.googleapis.com/projects/P/topics/T" or
// "projects/P/topics/T".
func topicID(source string) string {
	if i := strings.LastIndex(source, "/topics/"); i >= 0 {
		return source[i+len("/topics/"):]
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// CorrelationIDOf returns the correlation id a message's attributes carry, if any.
func CorrelationIDOf(m Message) string { return m.Attributes[event.AttrCorrelationID] }

// Wrap makes a CloudEvent function of h: it decodes the event, runs h with the
// correlation id in the context (so every log line carries it), and applies the
// error policy described in the package comment.
func Wrap(name string, log *slog.Logger, dl DeadLetters, h Handler, opts ...Option) func(context.Context, cloudevent.Event) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return func(ctx context.Context, e cloudevent.Event) error {
		m, err := Decode(e)
		if err != nil {
			// Without a Pub/Sub message there is nothing to redeliver differently:
			// keep the raw event data in the dead letter.
			m = Message{ID: e.ID(), Data: e.Data()}
		} else {
			if id := CorrelationIDOf(m); id != "" {
				ctx = logging.WithCorrelationID(ctx, id)
			}
			if o.begin != nil {
				var end func(error)
				ctx, end = o.begin(ctx, m)
				defer func() { end(err) }()
			}
			err = h(ctx, m)
		}
		if err == nil {
			return nil
		}
		if fault.Retryable(err) {
			log.WarnContext(ctx, name+": will retry", "messageId", m.ID, "error", err.Error(),
				"code", fault.CodeOf(err, "UNKNOWN"), "retryAfter", fault.RetryAfter(err, time.Now()).String())
			return err
		}
		cid := correlationIDFromError(err, m)
		log.ErrorContext(ctx, name+": cannot process message, dead-lettering", "messageId", m.ID,
			"error", err.Error(), "code", fault.CodeOf(err, "UNPROCESSABLE"), "kind", fault.KindOf(err).String())
		if dlErr := dl.Send(ctx, m, cid, reasonOf(err), err); dlErr != nil {
			log.ErrorContext(ctx, name+": dead-letter failed, will retry", "messageId", m.ID, "error", dlErr.Error())
			return fault.Wrap(fault.Transient, "DEADLETTER_FAILED", dlErr, "dead-letter")
		}
		return nil
	}
}

// Option configures Wrap.
type Option func(*options)

type options struct {
	begin func(context.Context, Message) (context.Context, func(error))
}

// Observe runs begin once the message is decoded: the handler, the trigger's log lines
// and the dead letter then run in the context it returns (a span, for traces), and end
// is told the handler's error when the message is answered (for the outcome metric).
func Observe(begin func(ctx context.Context, m Message) (context.Context, func(handlerErr error))) Option {
	return func(o *options) { o.begin = begin }
}

// WithCorrelationID attaches the correlation id a handler derived (from the payload)
// to err, so the dead letter carries it.
func WithCorrelationID(err error, id string) error {
	if err == nil || id == "" {
		return err
	}
	return &correlated{err: err, id: id}
}

type correlated struct {
	err error
	id  string
}

func (c *correlated) Error() string { return c.err.Error() }
func (c *correlated) Unwrap() error { return c.err }

func correlationIDFromError(err error, m Message) string {
	var c *correlated
	if errors.As(err, &c) {
		return c.id
	}
	return CorrelationIDOf(m)
}

func reasonOf(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Message != "" {
		return fe.Message
	}
	return err.Error()
}
