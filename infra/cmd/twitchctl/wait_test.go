package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// egress --wait through the whole local stack (functions server, fake Twitch, the
// emulators): it prints the outcome Finalize recorded, SENT with Twitch's message id
// or FAILED with the code (exit 1), and --json prints the same as JSON.
func TestEgressWait(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	st, err := stack.Start(context.Background(), stack.Options{
		Project:       emulators.ProjectID(t),
		PubSubHost:    emulators.Host(emulators.PubSub),
		FirestoreHost: emulators.Host(emulators.Firestore),
		BinDir:        t.TempDir(),
		MinBackoff:    500 * time.Millisecond,
		MaxBackoff:    2 * time.Second,
		NoWatch:       true,
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	defer st.Stop()
	g := []string{"--control", st.Fake.ControlURL(), "--pubsub", st.PubSubHost, "--firestore", st.FirestoreHost, "--project", st.Project}
	runCtl := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := run(append(append([]string{}, g...), args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := runCtl("egress", "--type", "chat", "--channel", "#bitbrat_demo", "--text", "wait for me", "--wait", "--wait-for", "60s")
	if code != 0 {
		t.Fatalf("chat --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	var msgID string
	for _, c := range st.Fake.Deliveries().Chat {
		if c.Message == "wait for me" {
			msgID = c.MessageID
		}
	}
	if msgID == "" || !strings.Contains(out, "waiting up to 1m0s for the delivery outcome") ||
		!strings.Contains(out, "SENT at ") || !strings.Contains(out, "Twitch message id "+msgID) {
		t.Errorf("chat --wait output (fake's message id %q):\n%s", msgID, out)
	}

	code, out, errOut = runCtl("egress", "--type", "dm", "--user", "not-a-number", "--text", "who?", "--wait", "--wait-for", "60s", "--json")
	if code != 1 || !strings.Contains(errOut, "FAILED (INVALID_USER_ID)") {
		t.Fatalf("dm --wait to a bad id: exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var r egressResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("--json output is not JSON after the note: %v\n%s", err, out)
	}
	if r.Status != "FAILED" || r.Code != "INVALID_USER_ID" || r.CorrelationID == "" || r.DeliveredAt == "" {
		t.Errorf("--json outcome %+v", r)
	}
	if len(st.Fake.Deliveries().Whispers) != 0 {
		t.Errorf("a whisper reached the fake: %+v", st.Fake.Deliveries().Whispers)
	}
}
