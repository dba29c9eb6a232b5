package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
)

// Exit codes and messages: help is success on stdout, a usage error is 2 with the
// problem in words on stderr, a command that fails is 1.
func TestExitCodes(t *testing.T) {
	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctl := "--control=" + fake.ControlURL()
	for _, c := range []struct {
		name        string
		args        []string
		code        int
		out, errOut string // substrings expected on stdout and stderr
	}{
		{"-h", []string{"-h"}, 0, "usage: twitchctl", ""},
		{"--help", []string{"--help"}, 0, "commands:", ""},
		{"help", []string{"help"}, 0, "-h, --help and help print this and exit 0", ""},
		{"help of a command", []string{"help", "close"}, 0, "usage: twitchctl close <code>", ""},
		{"command -h", []string{"trigger", "-h"}, 0, "-broadcaster", ""},
		{"no command", nil, 2, "", "no command given"},
		{"unknown command", []string{"tirgger"}, 2, "", `unknown command "tirgger"`},
		{"unknown flag", []string{"--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{"missing argument", []string{"trigger"}, 2, "", "trigger needs a subscription type, e.g. twitchctl trigger channel.follow"},
		{"missing close code", []string{"close"}, 2, "", "close needs a close code (4000-4007), e.g. twitchctl close 4000"},
		{"argument too many", []string{"sessions", "now"}, 2, "", `sessions takes no arguments, only flags (got "now")`},
		{"bad close code", []string{ctl, "close", "soon"}, 2, "", `close code "soon" is not a number`},
		{"bad egress type", []string{ctl, "egress", "--type", "shout", "--text", "x"}, 2, "", `--type "shout": want dm or chat`},
		{"control API unreachable", []string{"--control=http://127.0.0.1:1", "--timeout=5s", "users"}, 1, "", "twitchctl:"},
		{"users", []string{ctl, "users"}, 0, "pixel_pioneer", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := run(c.args, &out, &errOut)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), c.out) {
				t.Errorf("stdout lacks %q:\n%s", c.out, out.String())
			}
			if !strings.Contains(errOut.String(), c.errOut) {
				t.Errorf("stderr lacks %q:\n%s", c.errOut, errOut.String())
			}
			if code == 0 && errOut.Len() > 0 {
				t.Errorf("success wrote to stderr: %s", errOut.String())
			}
		})
	}
}

// --json prints the fake's answer as JSON, for scripts.
func TestJSONOutput(t *testing.T) {
	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctl := "--control=" + fake.ControlURL()
	var out, errOut strings.Builder
	if code := run([]string{ctl, "users", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("users --json: exit %d: %s", code, errOut.String())
	}
	var us []faketwitch.UserView
	if err := json.Unmarshal([]byte(out.String()), &us); err != nil {
		t.Fatalf("users --json is not JSON: %v\n%s", err, out.String())
	}
	found := false
	for _, u := range us {
		found = found || (u.ID == faketwitch.BotID && u.Login == faketwitch.BotLogin)
	}
	if !found {
		t.Errorf("users --json lacks the bot: %+v", us)
	}
	for _, cmd := range []string{"sessions", "deliveries"} {
		out.Reset()
		errOut.Reset()
		if code := run([]string{cmd, ctl, "--json"}, &out, &errOut); code != 0 {
			t.Fatalf("%s --json: exit %d: %s", cmd, code, errOut.String())
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
			t.Errorf("%s --json is not a JSON object: %v\n%s", cmd, err, out.String())
		}
	}
}
