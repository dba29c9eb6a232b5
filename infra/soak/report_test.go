package soak

import (
	"testing"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestFaultsCountsConduitRoutes: a notification Twitch retried on the other shard
// counts as delivered (and as retried); one no shard took is not an event of the
// fault but a failure of its own (tw-drop), never "lost"; one a shard took and that
// is not on ingress is lost; two ingress messages are a duplicate.
func TestFaultsCountsConduitRoutes(t *testing.T) {
	type note struct {
		id      string
		route   *twitchtest.ConduitDelivery
		ingress int
	}
	delivered := &twitchtest.ConduitDelivery{Target: "0", DeliveredTo: "0"}
	retried := &twitchtest.ConduitDelivery{Target: "1", Retry: "0", DeliveredTo: "0"}
	dropped := &twitchtest.ConduitDelivery{Target: "1", Retry: "0", Lost: true}
	for _, tc := range []struct {
		name string
		n    note
		want Fault
	}{
		{"delivered to its target", note{id: "a", route: delivered, ingress: 1}, Fault{Events: 1, OnIngress: 1}},
		{"retried on the other shard", note{id: "b", route: retried, ingress: 1}, Fault{Events: 1, OnIngress: 1, Retried: 1}},
		{"dropped by Twitch", note{id: "c", route: dropped}, Fault{TwitchDropped: 1}},
		{"taken by a shard, not on ingress", note{id: "d", route: retried}, Fault{Events: 1, Lost: 1, Retried: 1}},
		{"on ingress twice", note{id: "e", route: delivered, ingress: 2}, Fault{Events: 1, Duplicated: 1}},
		{"WebSocket mode (no route)", note{id: "f", ingress: 1}, Fault{Events: 1, OnIngress: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(nil, 1)
			ing := collect.NewEvents()
			for i := range tc.n.ingress {
				ing.Add(bus.Received{ID: tc.n.id + string(rune('0'+i)),
					Attributes: map[string]string{event.AttrCorrelationID: event.CorrelationIDForEventSub(tc.n.id)}})
			}
			routes := map[string]twitchtest.ConduitDelivery{}
			if tc.n.route != nil {
				r := *tc.n.route
				r.MessageID = tc.n.id
				routes[tc.n.id] = r
			}
			fs := faults([]sent{{id: tc.n.id, phase: "p", event: 1}}, ing, collect.NewNotifications(s.PhaseIndex), s, routes)
			if len(fs) != 1 {
				t.Fatalf("faults: %+v, want one", fs)
			}
			got := fs[0]
			tc.want.Name = "p"
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if wantOK := tc.want.Lost == 0 && tc.want.Duplicated == 0 && tc.want.TwitchDropped == 0; got.OK() != wantOK {
				t.Errorf("OK() = %v, want %v", got.OK(), wantOK)
			}
		})
	}
}
