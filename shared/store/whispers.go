package store

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// CollectionWhisperRecipients holds one document per whisper sender (the bot): the
// recipients it whispered within the last WhisperWindow.
const CollectionWhisperRecipients = "whisperRecipients"

// WhisperWindow is the span over which Twitch's "40 unique recipients per day"
// counts. Twitch does not say whether its day is a calendar day or a rolling one; a
// rolling 24 hours is never looser than either reading (a calendar day would allow 40
// recipients at 23:59 and 40 more at 00:01), so that is what is counted.
const WhisperWindow = 24 * time.Hour

// whisperRetention is how long an untouched sender document is kept: once the last
// recipient has left the window, the document says nothing any more.
const whisperRetention = 2 * WhisperWindow

// WhisperRecipients tracks, in Firestore, which recipients a sender whispered within
// the window, so that the daily unique-recipient cap holds across function instances.
// Each Admit is one transaction on the sender's document; the document stays small
// (at most the cap's worth of recipients, expired ones are pruned on every write) and
// carries expireAt for the TTL policy.
type WhisperRecipients struct {
	client *firestore.Client
}

// NewWhisperRecipients returns the recipient record on client.
func NewWhisperRecipients(client *firestore.Client) *WhisperRecipients {
	return &WhisperRecipients{client: client}
}

// WhisperRequest asks to whisper one recipient.
type WhisperRequest struct {
	SenderID    string
	RecipientID string
	// Key identifies the whisper (its correlation id). A retry of the same whisper is
	// answered the same way: still first-time if it was first-time when first admitted.
	Key string
	// At is when the whisper is sent; the window ends at At.
	At time.Time
	// Cap is the number of distinct recipients allowed within the window (Twitch: 40).
	Cap int
}

// WhisperAdmission is what Admit decided.
type WhisperAdmission struct {
	// Admitted: the recipient is within the cap (already counted, or counted now).
	Admitted bool
	// FirstTime: the recipient had not been whispered within the window before this
	// whisper (Key). Twitch limits whispers to a first-time recipient to 500
	// characters; not having whispered them in the window is the closest cheap
	// approximation, and it errs on the safe side.
	FirstTime bool
	// Recipients is how many distinct recipients the window holds after this call.
	Recipients int
	// NextSlot is, when not admitted, when the oldest recipient leaves the window.
	NextSlot time.Time
}

type whisperDoc struct {
	SenderID   string                  `firestore:"senderId"`
	Recipients map[string]whisperEntry `firestore:"recipients"`
	UpdatedAt  time.Time               `firestore:"updatedAt"`
	ExpireAt   time.Time               `firestore:"expireAt"`
}

type whisperEntry struct {
	// FirstAt is the first whisper to this recipient within the window.
	FirstAt time.Time `firestore:"firstAt"`
	// Key is the whisper that added the recipient.
	Key string `firestore:"key"`
}

// Admit counts r.RecipientID against r.SenderID's cap, in a transaction, and says
// whether the whisper may be sent and whether the recipient is first-time. A refused
// recipient is not recorded.
func (w *WhisperRecipients) Admit(ctx context.Context, r WhisperRequest) (WhisperAdmission, error) {
	if r.SenderID == "" || r.RecipientID == "" || r.Cap <= 0 || r.At.IsZero() {
		return WhisperAdmission{}, fault.New(fault.Invalid, "WHISPER_ADMIT_INVALID",
			"admit whisper: sender, recipient, time and a positive cap are required")
	}
	ref := w.client.Collection(CollectionWhisperRecipients).Doc(DocID(r.SenderID))
	var out WhisperAdmission
	err := w.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = WhisperAdmission{}
		snap, err := tx.Get(ref)
		if err != nil && status.Code(err) != codes.NotFound {
			return err
		}
		d := whisperDoc{SenderID: r.SenderID}
		if snap != nil && snap.Exists() {
			if err := snap.DataTo(&d); err != nil {
				return err
			}
		}
		cutoff := r.At.Add(-WhisperWindow)
		live := make(map[string]whisperEntry, len(d.Recipients)+1)
		var oldest time.Time
		for id, e := range d.Recipients {
			if !e.FirstAt.After(cutoff) {
				continue
			}
			live[id] = e
			if oldest.IsZero() || e.FirstAt.Before(oldest) {
				oldest = e.FirstAt
			}
		}
		if e, ok := live[r.RecipientID]; ok {
			out = WhisperAdmission{Admitted: true, FirstTime: e.Key != "" && e.Key == r.Key, Recipients: len(live)}
			if len(live) == len(d.Recipients) {
				return nil // nothing changed: no write
			}
		} else if len(live) >= r.Cap {
			out = WhisperAdmission{Recipients: len(live), NextSlot: oldest.Add(WhisperWindow)}
			if len(live) == len(d.Recipients) {
				return nil
			}
		} else {
			live[r.RecipientID] = whisperEntry{FirstAt: r.At, Key: r.Key}
			out = WhisperAdmission{Admitted: true, FirstTime: true, Recipients: len(live)}
		}
		d.Recipients, d.UpdatedAt, d.ExpireAt = live, r.At, r.At.Add(whisperRetention)
		return tx.Set(ref, d)
	})
	if err != nil {
		return WhisperAdmission{}, classify(err, "admit whisper recipient for sender %s", r.SenderID)
	}
	return out, nil
}

// Withdraw gives back the slot that the whisper key took for recipient, when Twitch
// refused that whisper for good: nothing was delivered, so it must not count against
// the daily cap (nor make the recipient look already whispered). A slot the
// recipient holds from another whisper is left alone.
func (w *WhisperRecipients) Withdraw(ctx context.Context, senderID, recipientID, key string) error {
	ref := w.client.Collection(CollectionWhisperRecipients).Doc(DocID(senderID))
	err := w.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		var d whisperDoc
		if err := snap.DataTo(&d); err != nil {
			return err
		}
		if e, ok := d.Recipients[recipientID]; !ok || e.Key != key {
			return nil
		}
		return tx.Update(ref, []firestore.Update{{FieldPath: []string{"recipients", recipientID}, Value: firestore.Delete}})
	})
	return classify(err, "withdraw whisper recipient for sender %s", senderID)
}

// String describes an admission for logs.
func (a WhisperAdmission) String() string {
	if !a.Admitted {
		return fmt.Sprintf("refused (%d recipients in window, next slot %s)", a.Recipients, a.NextSlot.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("admitted (first time: %t, %d recipients in window)", a.FirstTime, a.Recipients)
}
