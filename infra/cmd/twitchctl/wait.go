package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// egressResult is what `egress --json` prints; the outcome fields are set with --wait.
type egressResult struct {
	CorrelationID   string `json:"correlationId"`
	Topic           string `json:"topic"`
	PubSubMessageID string `json:"pubsubMessageId"`
	// Status is SENT or FAILED, as Finalize recorded it.
	Status            string           `json:"status,omitempty"`
	Code              string           `json:"code,omitempty"`
	Message           string           `json:"message,omitempty"`
	ProviderMessageID string           `json:"providerMessageId,omitempty"`
	DeliveredAt       string           `json:"deliveredAt,omitempty"`
	Parts             int              `json:"parts,omitempty"`
	Error             *event.ErrorInfo `json:"error,omitempty"`
}

// waitOutcome polls events/{correlationId}, which the Finalize function writes once
// the egress function reported SENT or FAILED, for at most --wait-for. FAILED is a
// delivery that failed, not a failure of twitchctl: it exits 1 so scripts notice.
func waitOutcome(ctx context.Context, e *cmdEnv, a *cmdArgs, r egressResult) error {
	where, fs, err := openFirestore(ctx, e.g)
	if err != nil {
		return err
	}
	defer fs.Close()
	if !a.json {
		fmt.Fprintf(e.out, "waiting up to %s for the delivery outcome (events/%s on %s, written by Finalize)...\n", a.waitFor, r.CorrelationID, where)
	}
	ev := store.NewEvents(fs, nil)
	deadline := time.Now().Add(a.waitFor)
	var lastErr error
	for {
		call, cancel := context.WithTimeout(ctx, e.g.timeout)
		o, ok, err := ev.GetOutcome(call, r.CorrelationID)
		cancel()
		lastErr = err
		if err == nil && ok && (o.Delivery.Status == "SENT" || o.Delivery.Status == "FAILED") {
			return printOutcome(e, a, r, o)
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			why := "no outcome recorded yet"
			if lastErr != nil {
				why = lastErr.Error()
			}
			return fmt.Errorf("no delivery outcome for correlationId %s within %s (%s): are the functions running (make run)? --wait-for waits longer",
				r.CorrelationID, a.waitFor, why)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printOutcome(e *cmdEnv, a *cmdArgs, r egressResult, o store.Outcome) error {
	d := o.Delivery
	r.Status, r.ProviderMessageID, r.DeliveredAt, r.Error, r.Parts = d.Status, d.ProviderMessageID, d.DeliveredAt, d.Error, len(d.Parts)
	if d.Error != nil {
		r.Code, r.Message = d.Error.Code, d.Error.Message
	}
	if a.json {
		if err := printJSON(e.out, r); err != nil {
			return err
		}
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "%s at %s", d.Status, d.DeliveredAt)
		if r.Code != "" {
			fmt.Fprintf(&b, ", code %s: %s", r.Code, r.Message)
		}
		if d.ProviderMessageID != "" {
			fmt.Fprintf(&b, ", Twitch message id %s", d.ProviderMessageID)
		}
		if r.Parts > 0 {
			fmt.Fprintf(&b, " (%d parts)", r.Parts)
		}
		fmt.Fprintln(e.out, b.String())
	}
	if d.Status == "FAILED" {
		return deliveryFailed{r.Code}
	}
	return nil
}

// deliveryFailed is a FAILED outcome: already printed, exit 1.
type deliveryFailed struct{ code string }

func (f deliveryFailed) Error() string { return "the delivery FAILED (" + f.code + ")" }
