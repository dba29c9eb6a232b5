package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func runCtl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// The conduit commands' exit codes: usage errors 2, failures 1, success 0 with
// nothing on stderr.
func TestConduitCommandsExitCodes(t *testing.T) {
	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctl := "--control=" + fake.ControlURL()
	fsFlags := []string{"--firestore=" + emulators.Host(emulators.Firestore), "--project=" + emulators.ProjectID(t)}
	for _, c := range []struct {
		name        string
		args        []string
		code        int
		out, errOut string
	}{
		{"conduits without any", []string{ctl, "conduits"}, 0, "no conduits", ""},
		{"shard without arguments", []string{ctl, "shard"}, 2, "", "shard needs an action (disable or kill-socket) and a shard id, e.g. twitchctl shard disable 0"},
		{"shard too many arguments", []string{ctl, "shard", "disable", "0", "1"}, 2, "", "shard takes 2 arguments"},
		{"shard unknown action", []string{ctl, "shard", "explode", "0"}, 2, "", `shard "explode": want disable or kill-socket`},
		{"shard id not a number", []string{ctl, "shard", "disable", "first"}, 2, "", `shard id "first" is not a number`},
		{"shard bad close code", []string{ctl, "shard", "kill-socket", "0", "--code", "1000"}, 2, "", "--code 1000: want 4000-4999"},
		{"shard with no conduit", []string{ctl, "shard", "disable", "0"}, 1, "", "the fake has no conduit"},
		{"shard of an unknown conduit", []string{ctl, "shard", "disable", "0", "--conduit", "nope"}, 1, "", "no shard 0 in conduit nope"},
		{"channel unknown action", append([]string{ctl, "channel", "rename", "bitbrat_demo"}, fsFlags...), 2, "", `channel "rename": want add or remove`},
		{"channel without a name", []string{ctl, "channel", "add"}, 2, "", "channel needs an action (add or remove) and a channel login or user id"},
		{"channel of an unknown login", append([]string{ctl, "channel", "add", "nobody_here"}, fsFlags...), 1, "", `the fake has no user "nobody_here"`},
		{"channel with a bad id", append([]string{ctl, "channel", "add", "someone", "--id", "abc"}, fsFlags...), 2, "", `--id "abc" is not a Twitch user id`},
		{"help shard", []string{"help", "shard"}, 0, "usage: twitchctl shard <action and shard>", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCtl(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			if !strings.Contains(out, c.out) || !strings.Contains(errOut, c.errOut) {
				t.Fatalf("stdout %q (want %q), stderr %q (want %q)", out, c.out, errOut, c.errOut)
			}
			if code == 0 && errOut != "" {
				t.Errorf("success wrote to stderr: %s", errOut)
			}
		})
	}
}

// conduits lists the fake's conduits (--json for scripts); shard disable and
// kill-socket act on the fake; a shard without a socket cannot be killed.
func TestConduitsAndShards(t *testing.T) {
	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctl := "--control=" + fake.ControlURL()
	fake.Twitch.AddConduit("conduit-a")
	fake.Twitch.AddConduit("conduit-b")

	code, out, errOut := runCtl(t, ctl, "conduits")
	if code != 0 || !strings.Contains(out, "conduit conduit-a (1 shards)") || !strings.Contains(out, "conduit conduit-b") {
		t.Fatalf("conduits: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCtl(t, ctl, "conduits", "--json")
	var cs []twitchtest.ConduitInfo
	if code != 0 || json.Unmarshal([]byte(out), &cs) != nil || len(cs) != 2 || cs[0].ID != "conduit-a" || len(cs[0].Shards) != 1 {
		t.Fatalf("conduits --json: exit %d %v\n%s%s", code, cs, out, errOut)
	}
	// Without --conduit: the newest one.
	code, out, errOut = runCtl(t, ctl, "shard", "disable", "0", "--status", twitchtest.ShardNotificationFailures)
	if code != 0 || !strings.Contains(out, "shard 0 of conduit conduit-b disabled (notification_failures_exceeded)") {
		t.Fatalf("shard disable: exit %d\n%s%s", code, out, errOut)
	}
	sh, _ := fake.Twitch.Shards("conduit-b")
	if sh[0].Status != twitchtest.ShardNotificationFailures {
		t.Fatalf("the fake's shard is %s", sh[0].Status)
	}
	code, out, errOut = runCtl(t, ctl, "shard", "disable", "0", "--conduit", "conduit-a", "--json")
	var r faketwitch.ShardResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Shard.ConduitID != "conduit-a" || r.Shard.Status != "websocket_disconnected" {
		t.Fatalf("shard disable --json: exit %d %+v\n%s%s", code, r, out, errOut)
	}
	code, _, errOut = runCtl(t, ctl, "shard", "kill-socket", "0")
	if code != 1 || !strings.Contains(errOut, "has no live socket") {
		t.Fatalf("kill-socket of a shard without a socket: exit %d: %s", code, errOut)
	}
}

// channel add and remove write the Firestore channels collection the conduit
// reconciler reads: a login is resolved on the fake, a numeric argument is the id.
func TestChannelAddRemove(t *testing.T) {
	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	project := emulators.ProjectID(t)
	args := func(a ...string) []string {
		return append([]string{"--control=" + fake.ControlURL(), "--firestore=" + emulators.Host(emulators.Firestore), "--project=" + project}, a...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := store.NewClient(ctx, project, "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	list := func() map[string]string {
		t.Helper()
		chs, err := store.NewChannels(fs, nil).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, c := range chs {
			out[c.BroadcasterID] = c.Login
		}
		return out
	}
	for _, a := range [][]string{{"channel", "add", "#Cooler_User"}, {"channel", "add", "5555"}, {"channel", "add", "elsewhere", "--id", "7777"}} {
		if code, out, errOut := runCtl(t, args(a...)...); code != 0 || !strings.Contains(out, "added to the channels collection") {
			t.Fatalf("%v: exit %d\n%s%s", a, code, out, errOut)
		}
	}
	if got := list(); len(got) != 3 || got["1002"] != "cooler_user" || got["5555"] != "" || got["7777"] != "elsewhere" {
		t.Fatalf("channels %v", got)
	}
	if code, out, errOut := runCtl(t, args("channel", "remove", "cooler_user")...); code != 0 || !strings.Contains(out, "cooler_user (1002) removed") {
		t.Fatalf("remove: exit %d\n%s%s", code, out, errOut)
	}
	if got := list(); len(got) != 2 || got["5555"] != "" || got["7777"] != "elsewhere" {
		t.Fatalf("channels after removing 1002: %v", got)
	}
	if _, ok := list()["1002"]; ok {
		t.Fatal("1002 still listed")
	}
	// Firestore unreachable: a failure, exit 1, naming the flag.
	code, _, errOut := runCtl(t, "--control="+fake.ControlURL(), "--firestore=127.0.0.1:1", "--timeout=5s", "channel", "add", "1234")
	if code != 1 || !strings.Contains(errOut, "--firestore") {
		t.Fatalf("unreachable Firestore: exit %d: %s", code, errOut)
	}
}
