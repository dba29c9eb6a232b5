package functions

import (
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/config"
)

func TestReadSettings(t *testing.T) {
	s := readSettings(config.NewReader(config.Map(nil)))
	if s.EventTTL != 7*24*time.Hour || s.NormalizeMaxAge != 24*time.Hour || s.EgressMaxAge != 30*time.Minute || s.EgressDestination != "" {
		t.Errorf("defaults = %+v", s)
	}
	r := config.NewReader(config.Map(map[string]string{"NORMALIZE_MAX_AGE": "-1s", "LOG_LEVEL": "loud"}))
	readSettings(r)
	r.LogLevel("LOG_LEVEL")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "NORMALIZE_MAX_AGE") || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Errorf("want both variables named, got %v", err)
	}
}
