package functions

import (
	"errors"
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/config"
)

func TestReadWebhookSecret(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"unset", "", false},
		{"9 characters", "123456789", false},
		{"10 characters", "1234567890", true},
		{"100 characters", strings.Repeat("x", 100), true},
		{"101 characters", strings.Repeat("x", 101), false},
		{"not ASCII", "sécret-sécret", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := readWebhookSecret(config.Map(map[string]string{SettingWebhookSecret: tc.value}))
			if tc.ok != (err == nil) {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				var ce *configError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), SettingWebhookSecret) {
					t.Errorf("error %v does not name the variable", err)
				}
				if tc.value != "" && strings.Contains(err.Error(), tc.value) {
					t.Errorf("error shows the secret")
				}
				return
			}
			if s.Reveal() != tc.value {
				t.Errorf("secret %q", s.Reveal())
			}
		})
	}
}
