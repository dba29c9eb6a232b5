package twitch

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// openSession connects to the fake's EventSub socket and returns the session id. A
// goroutine keeps reading (so control frames are answered) until the test ends.
func openSession(t *testing.T, f *fixture) (string, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.fake.EventSubWSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(b)
	if err != nil || m.Metadata.MessageType != MessageTypeWelcome {
		t.Fatalf("want welcome, got %s (%v)", b, err)
	}
	s, err := m.Session()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow(); <-done })
	return s.ID, c
}

func followReq(session string) CreateSubscriptionRequest {
	return CreateSubscriptionRequest{Type: TypeChannelFollow, Version: VersionChannelFollow,
		Condition: map[string]string{"broadcaster_user_id": broadcasterID, "moderator_user_id": botID},
		Transport: WebSocketTransport(session)}
}

func updateReq(session, broadcaster string) CreateSubscriptionRequest {
	return CreateSubscriptionRequest{Type: TypeChannelUpdate, Version: VersionChannelUpdate,
		Condition: map[string]string{"broadcaster_user_id": broadcaster}, Transport: WebSocketTransport(session)}
}

func TestCreateEventSubSubscription(t *testing.T) {
	tests := []struct {
		name  string
		req   func(f *fixture, session string) CreateSubscriptionRequest
		setup func(t *testing.T, f *fixture, session string)
		kind  fault.Kind
		code  string
		flav  Flavour
	}{
		{name: "channel.follow v2 accepted", req: func(_ *fixture, s string) CreateSubscriptionRequest { return followReq(s) }},
		{name: "channel.update v2 accepted", req: func(_ *fixture, s string) CreateSubscriptionRequest { return updateReq(s, broadcasterID) }},
		{name: "409 same type and condition on the session",
			req: func(_ *fixture, s string) CreateSubscriptionRequest { return followReq(s) },
			setup: func(t *testing.T, f *fixture, s string) {
				if _, err := f.client.CreateEventSubSubscription(context.Background(), followReq(s)); err != nil {
					t.Fatal(err)
				}
			},
			kind: fault.Permanent, code: CodeSubscriptionExists},
		{name: "400 unknown session",
			req:  func(_ *fixture, _ string) CreateSubscriptionRequest { return followReq("no-such-session") },
			kind: fault.Permanent, code: CodeBadRequest},
		{name: "400 unknown type",
			req: func(_ *fixture, s string) CreateSubscriptionRequest {
				r := updateReq(s, broadcasterID)
				r.Type = "channel.nonsense"
				return r
			},
			kind: fault.Permanent, code: CodeBadRequest},
		{name: "403 not a moderator of the channel",
			req: func(_ *fixture, s string) CreateSubscriptionRequest {
				r := followReq(s)
				r.Condition["broadcaster_user_id"] = viewerID
				return r
			},
			kind: fault.Permanent, code: CodeForbidden},
		{name: "429 websocket transports limit",
			req: func(_ *fixture, s string) CreateSubscriptionRequest { return followReq(s) },
			setup: func(t *testing.T, f *fixture, _ string) {
				for i := 0; i < 3; i++ {
					other, _ := openSession(t, f)
					if _, err := f.client.CreateEventSubSubscription(context.Background(), followReq(other)); err != nil {
						t.Fatal(err)
					}
				}
			},
			kind: fault.RateLimited, code: CodeTransportsLimit, flav: FlavourTransports},
		{name: "429 total cost",
			req: func(_ *fixture, s string) CreateSubscriptionRequest { return updateReq(s, "9010") },
			setup: func(t *testing.T, f *fixture, s string) {
				// channel.update of a channel whose owner did not authorize us costs 1.
				for i := 0; i <= 10; i++ {
					id := strconv.Itoa(9000 + i)
					f.fake.AddUser(twitchtest.User{ID: id, Login: "c" + id})
					if i == 10 {
						break
					}
					if _, err := f.client.CreateEventSubSubscription(context.Background(), updateReq(s, id)); err != nil {
						t.Fatal(err)
					}
				}
			},
			kind: fault.RateLimited, code: CodeTotalCostLimit, flav: FlavourTotalCost},
		{name: "missing session id rejected locally",
			req:  func(_ *fixture, _ string) CreateSubscriptionRequest { return followReq("") },
			kind: fault.Invalid, code: CodeInvalidInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twitchtest.Options{})
			session, _ := openSession(t, f)
			if tc.setup != nil {
				tc.setup(t, f, session)
			}
			req := tc.req(f, session)
			sub, err := f.client.CreateEventSubSubscription(context.Background(), req)
			checkErr(t, err, tc.kind, tc.code)
			if tc.flav != FlavourNone {
				if ae, ok := AsAPIError(err); !ok || ae.Flavour != tc.flav {
					t.Errorf("flavour = %+v, want %s", ae, tc.flav)
				}
			}
			if tc.code == "" {
				if sub.ID == "" || sub.Status != StatusEnabled || sub.Transport.SessionID != session || sub.Type != req.Type || sub.MaxTotalCost != 10 {
					t.Errorf("subscription = %+v", sub)
				}
			}
		})
	}
}

func TestConduitSubscriptionWithAppToken(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	f.fake.AddConduit("conduit-1")
	app, err := f.oauth.AppToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := NewStaticTokenSource(context.Background(), f.oauth, app.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Validation().UserID != "" {
		t.Errorf("app token validation has a user: %+v", ts.Validation())
	}
	c := NewClient(Options{APIBaseURL: f.fake.APIBaseURL(), ClientID: f.fake.ClientID(), AppTokens: ts})
	sub, err := c.CreateEventSubSubscription(context.Background(), CreateSubscriptionRequest{
		Type: TypeChannelUpdate, Version: VersionChannelUpdate,
		Condition: map[string]string{"broadcaster_user_id": broadcasterID}, Transport: ConduitTransport("conduit-1")})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Transport.Method != "conduit" || sub.Transport.ConduitID != "conduit-1" {
		t.Errorf("transport = %+v", sub.Transport)
	}
	list, err := c.ListConduitSubscriptions(context.Background(), "conduit-1", ListSubscriptionsFilter{})
	if err != nil || len(list.Subscriptions) != 1 {
		t.Fatalf("app token should see its conduit subscription: %+v %v", list, err)
	}
}

func TestListAndDeleteEventSubSubscriptions(t *testing.T) {
	f := newFixture(t, twitchtest.Options{PageSize: 2})
	ctx := context.Background()
	session, conn := openSession(t, f)
	if _, err := f.client.CreateEventSubSubscription(ctx, followReq(session)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		id := strconv.Itoa(8000 + i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "c" + id})
		if _, err := f.client.CreateEventSubSubscription(ctx, updateReq(session, id)); err != nil {
			t.Fatal(err)
		}
	}
	f.fake.ResetRequests()
	list, err := f.client.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Subscriptions) != 5 || list.Total != 5 || list.TotalCost != 4 || list.MaxTotalCost != 10 {
		t.Fatalf("list = %+v", list)
	}
	if n := len(f.fake.RequestsTo("GET", "/helix/eventsub/subscriptions")); n != 3 {
		t.Errorf("pages fetched = %d, want 3 (page size 2)", n)
	}
	filtered, err := f.client.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{Type: TypeChannelFollow})
	if err != nil || len(filtered.Subscriptions) != 1 {
		t.Fatalf("type filter: %+v %v", filtered, err)
	}
	byUser, err := f.client.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{UserID: "8001"})
	if err != nil || len(byUser.Subscriptions) != 1 {
		t.Fatalf("user filter: %+v %v", byUser, err)
	}
	_, err = f.client.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{Type: TypeChannelFollow, Status: StatusEnabled})
	checkErr(t, err, fault.Invalid, CodeInvalidInput)

	// Deleting works once; the second time Twitch says 404.
	id := list.Subscriptions[0].ID
	checkErr(t, f.client.DeleteEventSubSubscription(ctx, id), 0, "")
	checkErr(t, f.client.DeleteEventSubSubscription(ctx, id), fault.Permanent, CodeNotFound)

	// A dropped socket leaves its subscriptions listed as websocket_disconnected:
	// the orphans a restarted connector must clean up.
	_ = conn.Close(websocket.StatusNormalClosure, "")
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f.fake.Wait(waitCtx, func() bool { return len(f.fake.Sessions()) == 0 }); err != nil {
		t.Fatal(err)
	}
	gone, err := f.client.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{Status: StatusWebSocketDisconnected})
	if err != nil || len(gone.Subscriptions) != 4 {
		t.Fatalf("disconnected = %+v %v", gone, err)
	}
}

func TestGetUsersBatchesAndCaches(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	var logins []string
	for i := 0; i < 150; i++ {
		id := strconv.Itoa(60000 + i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "user" + id})
		logins = append(logins, "User"+id)
	}
	ctx := context.Background()
	users, err := f.client.GetUsers(ctx, append(logins, "nobody-here"), []string{broadcasterID})
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 151 || users[0].Login != "user60000" || users[150].ID != broadcasterID {
		t.Fatalf("got %d users (first %+v)", len(users), users[0])
	}
	reqs := f.fake.RequestsTo("GET", "/helix/users")
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2 batches", len(reqs))
	}
	for _, r := range reqs {
		if n := len(r.Query["login"]) + len(r.Query["id"]); n > 100 {
			t.Errorf("batch of %d ids+logins exceeds 100", n)
		}
	}
	// Cached: no further requests, also from concurrent callers.
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, err := f.client.GetUsers(ctx, logins[:10], []string{broadcasterID})
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.fake.RequestsTo("GET", "/helix/users")); n != 2 {
		t.Errorf("cached lookups made requests: %d", n)
	}
	_, err = f.client.GetUsers(ctx, nil, []string{"abc"})
	checkErr(t, err, fault.Invalid, CodeInvalidInput)
}
