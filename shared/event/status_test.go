package event

import (
	"encoding/json"
	"testing"
	"time"
)

func TestConnectorStatusWireShape(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := NewConnectorStatus("inst-1", "shard", StateConnected, StateDisconnected, at)
	s.Shard = "0"
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "connector.status.changed", "connector": "twitch",
		"previousState": "CONNECTED", "currentState": "DISCONNECTED",
		"timestamp": "2026-12-01T10:00:00Z", "instanceId": "inst-1",
		"subject": "shard", "shard": "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("members %v, want exactly %v", got, want)
	}
}
