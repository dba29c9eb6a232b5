package main

import (
	"strings"
	"testing"
)

func TestReadConfigChannels(t *testing.T) {
	for _, c := range []struct {
		channels string
		set      bool
		// wantErr is a part of the error, "" for none.
		wantErr string
	}{
		{"bitbrat_demo,cooler_user", true, ""},
		{"#BitBrat_Demo, 1002", true, ""},
		{"", false, "no channel given"},
		{",,, ,", true, "no channel given"},
		{"bitbrat demo?", true, `"demo?" is not a Twitch login`},
		{"bitbrat-demo", true, `"bitbrat-demo" is not a Twitch login`},
		{"abcdefghijklmnopqrstuvwxyz", true, "is not a Twitch login"},
		{"alice,#Alice", true, `"#Alice" is listed twice`},
	} {
		t.Run(c.channels, func(t *testing.T) {
			env := map[string]string{"GOOGLE_CLOUD_PROJECT": "p", "TWITCH_CLIENT_ID": "c"}
			if c.set {
				env["TWITCH_CHANNELS"] = c.channels
			}
			_, err := ReadConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), "TWITCH_CHANNELS") || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one naming TWITCH_CHANNELS with %q", err, c.wantErr)
			}
		})
	}
}
