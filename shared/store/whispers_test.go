package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func whisperStore(t *testing.T) *WhisperRecipients {
	t.Helper()
	c, err := NewClient(context.Background(), emulators.ProjectID(t), "", WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return NewWhisperRecipients(c)
}

func whisperAdmit(t *testing.T, w *WhisperRecipients, r WhisperRequest) WhisperAdmission {
	t.Helper()
	a, err := w.Admit(context.Background(), r)
	if err != nil {
		t.Fatalf("admit %s: %v", r.RecipientID, err)
	}
	return a
}

var whisperT0 = time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)

func TestWhisperRecipientsCap(t *testing.T) {
	w := whisperStore(t)
	req := func(to, key string, at time.Time) WhisperRequest {
		return WhisperRequest{SenderID: "2002", RecipientID: to, Key: key, At: at, Cap: 3}
	}
	for i := 0; i < 3; i++ {
		a := whisperAdmit(t, w, req(fmt.Sprint(100+i), fmt.Sprint("k", i), whisperT0.Add(time.Duration(i)*time.Minute)))
		if !a.Admitted || !a.FirstTime || a.Recipients != i+1 {
			t.Fatalf("recipient %d: %+v", i, a)
		}
	}
	// A fourth distinct recipient is refused, and the refusal says when a slot frees.
	a := whisperAdmit(t, w, req("200", "k-new", whisperT0.Add(time.Hour)))
	if a.Admitted || a.Recipients != 3 || !a.NextSlot.Equal(whisperT0.Add(WhisperWindow)) {
		t.Fatalf("over the cap: %+v", a)
	}
	// A known recipient is still admitted, and is not first-time for a new whisper...
	a = whisperAdmit(t, w, req("101", "k-other", whisperT0.Add(time.Hour)))
	if !a.Admitted || a.FirstTime {
		t.Fatalf("known recipient, new whisper: %+v", a)
	}
	// ...but is for a retry of the whisper that first reached them.
	a = whisperAdmit(t, w, req("101", "k1", whisperT0.Add(2*time.Hour)))
	if !a.Admitted || !a.FirstTime {
		t.Fatalf("known recipient, retried whisper: %+v", a)
	}
	// The window rolls: across midnight UTC nothing resets, 24 h after the first
	// whisper its slot is free again.
	a = whisperAdmit(t, w, req("200", "k-new", whisperT0.Add(2*time.Hour)))
	if a.Admitted {
		t.Fatalf("after midnight UTC the cap must still hold: %+v", a)
	}
	a = whisperAdmit(t, w, req("200", "k-new", whisperT0.Add(WhisperWindow+time.Second)))
	if !a.Admitted || !a.FirstTime || a.Recipients != 3 {
		t.Fatalf("after the oldest left the window: %+v", a)
	}
}

func TestWhisperRecipientsSendersAreSeparate(t *testing.T) {
	w := whisperStore(t)
	for _, sender := range []string{"1", "2"} {
		a := whisperAdmit(t, w, WhisperRequest{SenderID: sender, RecipientID: "9", Key: "k", At: whisperT0, Cap: 1})
		if !a.Admitted {
			t.Fatalf("sender %s: %+v", sender, a)
		}
	}
}

func TestWhisperRecipientsConcurrentAdmitsHoldTheCap(t *testing.T) {
	w := whisperStore(t)
	const n, limit = 6, 3
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted int
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var a WhisperAdmission
			var err error
			// Contention may exhaust the transaction's retries; that error is transient
			// and the caller (Pub/Sub) retries it, as this loop does.
			for try := 0; try < 20; try++ {
				a, err = w.Admit(context.Background(), WhisperRequest{SenderID: "2002", RecipientID: fmt.Sprint(500 + i),
					Key: fmt.Sprint("c", i), At: whisperT0, Cap: limit})
				if err == nil || !fault.Retryable(err) {
					break
				}
			}
			if err != nil {
				t.Errorf("admit: %v", err)
				return
			}
			if a.Admitted {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if admitted != limit {
		t.Fatalf("admitted %d distinct recipients concurrently, cap %d", admitted, limit)
	}
}

func TestWhisperRecipientsDocument(t *testing.T) {
	w := whisperStore(t)
	whisperAdmit(t, w, WhisperRequest{SenderID: "2002", RecipientID: "7", Key: "k", At: whisperT0, Cap: 40})
	snap, err := w.client.Collection(CollectionWhisperRecipients).Doc("2002").Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	exp, err := snap.DataAt(FieldExpireAt)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := exp.(time.Time); !ok || !got.Equal(whisperT0.Add(2*WhisperWindow)) {
		t.Fatalf("expireAt = %v", exp)
	}
	if _, err := snap.DataAt("recipients.7.firstAt"); err != nil {
		t.Fatalf("recipient entry: %v", err)
	}
}

func TestWhisperRecipientsRejectsBadRequests(t *testing.T) {
	w := whisperStore(t)
	for _, r := range []WhisperRequest{
		{RecipientID: "1", At: whisperT0, Cap: 1},
		{SenderID: "1", At: whisperT0, Cap: 1},
		{SenderID: "1", RecipientID: "2", At: whisperT0},
		{SenderID: "1", RecipientID: "2", Cap: 1},
	} {
		if _, err := w.Admit(context.Background(), r); fault.KindOf(err) != fault.Invalid {
			t.Errorf("%+v: got %v, want an invalid-input error", r, err)
		}
	}
}
