package twitch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// maxListPages bounds pagination so that a server handing out cursors forever cannot
// keep a caller busy: 1,000 pages of 100 is far beyond any limit Twitch grants.
const maxListPages = 1000

// CreateSubscriptionRequest is the body of Create EventSub Subscription.
type CreateSubscriptionRequest struct {
	Type      string            `json:"type"`
	Version   string            `json:"version"`
	Condition map[string]string `json:"condition"`
	Transport Transport         `json:"transport"`
}

// CreatedSubscription is Twitch's answer to a create: the subscription and the cost
// totals of the token after it (worth logging: the limit is easy to hit).
type CreatedSubscription struct {
	Subscription
	Total        int
	TotalCost    int
	MaxTotalCost int
}

type subscriptionsBody struct {
	Data         []Subscription `json:"data"`
	Total        int            `json:"total"`
	TotalCost    int            `json:"total_cost"`
	MaxTotalCost int            `json:"max_total_cost"`
	Pagination   struct {
		Cursor string `json:"cursor"`
	} `json:"pagination"`
}

// CreateEventSubSubscription creates a subscription (202 Accepted). Errors of note:
// SUBSCRIPTION_EXISTS (409, same type and condition on this transport),
// WEBSOCKET_TRANSPORTS_LIMIT / SUBSCRIPTION_COST_LIMIT / SUBSCRIPTION_COUNT_LIMIT
// (429 that only deleting subscriptions clears), TWITCH_FORBIDDEN (403, missing scope),
// TWITCH_UNAUTHORIZED (401, e.g. an app token on a WebSocket transport). A conduit
// subscription is created with the app access token (Options.AppTokens), a WebSocket
// one with the user token.
func (c *Client) CreateEventSubSubscription(ctx context.Context, r CreateSubscriptionRequest) (*CreatedSubscription, error) {
	const endpoint = "POST /eventsub/subscriptions"
	if r.Type == "" || r.Version == "" {
		return nil, invalidInput("create subscription: type and version are required")
	}
	switch r.Transport.Method {
	case "websocket":
		if r.Transport.SessionID == "" {
			return nil, invalidInput("create subscription %s: websocket transport needs a session id", r.Type)
		}
	case "conduit":
		if r.Transport.ConduitID == "" {
			return nil, invalidInput("create subscription %s: conduit transport needs a conduit id", r.Type)
		}
	default:
		return nil, invalidInput("create subscription %s: unsupported transport method %q", r.Type, r.Transport.Method)
	}
	if r.Condition == nil {
		r.Condition = map[string]string{}
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, invalidInput("create subscription %s: %v", r.Type, err)
	}
	sender := c
	if r.Transport.Method == "conduit" {
		if sender, err = c.appClient("create conduit subscription " + r.Type); err != nil {
			return nil, err
		}
	}
	resp, err := sender.do(ctx, request{method: http.MethodPost, path: "/eventsub/subscriptions", url: c.subsURL, body: body})
	if err != nil {
		return nil, wrapf(err, "create subscription %s", r.Type)
	}
	var out subscriptionsBody
	if err := decode(endpoint, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != 1 || out.Data[0].ID == "" {
		return nil, malformed(endpoint, errorf("expected one subscription in data, got %d", len(out.Data)))
	}
	return &CreatedSubscription{Subscription: out.Data[0], Total: out.Total, TotalCost: out.TotalCost, MaxTotalCost: out.MaxTotalCost}, nil
}

// ListSubscriptionsFilter narrows a list. Twitch accepts at most one of Status, Type
// and UserID; SubscriptionID may be combined with none.
type ListSubscriptionsFilter struct {
	Status         string
	Type           string
	UserID         string
	SubscriptionID string
}

// SubscriptionList is every page of a list, concatenated.
type SubscriptionList struct {
	Subscriptions []Subscription
	Total         int
	TotalCost     int
	MaxTotalCost  int
}

// ListEventSubSubscriptions lists the subscriptions the token can see (with a user
// token: that user's WebSocket subscriptions, including disabled ones of dead
// sessions that still count against limits), following every page.
func (c *Client) ListEventSubSubscriptions(ctx context.Context, f ListSubscriptionsFilter) (*SubscriptionList, error) {
	return c.listSubscriptions(ctx, f)
}

// ListConduitSubscriptions lists the app's subscriptions (app access token) that
// deliver to conduitID, following every page. Twitch has no conduit filter, so the
// list is narrowed by f on Twitch's side (pass a Type or Status to page less) and by
// conduit here.
func (c *Client) ListConduitSubscriptions(ctx context.Context, conduitID string, f ListSubscriptionsFilter) (*SubscriptionList, error) {
	if conduitID == "" {
		return nil, invalidInput("list conduit subscriptions: conduit id is required")
	}
	app, err := c.appClient("list conduit subscriptions")
	if err != nil {
		return nil, err
	}
	list, err := app.listSubscriptions(ctx, f)
	if err != nil {
		return nil, err
	}
	kept := list.Subscriptions[:0]
	for _, s := range list.Subscriptions {
		if s.Transport.Method == "conduit" && s.Transport.ConduitID == conduitID {
			kept = append(kept, s)
		}
	}
	list.Subscriptions = kept
	return list, nil
}

// DeleteConduitSubscription deletes one of the app's subscriptions (app access
// token); TWITCH_NOT_FOUND when it does not exist (any more).
func (c *Client) DeleteConduitSubscription(ctx context.Context, id string) error {
	app, err := c.appClient("delete conduit subscription")
	if err != nil {
		return err
	}
	return app.DeleteEventSubSubscription(ctx, id)
}

func (c *Client) listSubscriptions(ctx context.Context, f ListSubscriptionsFilter) (*SubscriptionList, error) {
	const endpoint = "GET /eventsub/subscriptions"
	n := 0
	for _, v := range []string{f.Status, f.Type, f.UserID, f.SubscriptionID} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return nil, invalidInput("list subscriptions: Twitch accepts only one of status, type, user_id and subscription_id")
	}
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.UserID != "" {
		q.Set("user_id", f.UserID)
	}
	if f.SubscriptionID != "" {
		q.Set("subscription_id", f.SubscriptionID)
	}
	list := &SubscriptionList{}
	for page := 0; ; page++ {
		if page >= maxListPages {
			return nil, malformed(endpoint, errorf("more than %d pages", maxListPages))
		}
		u := c.subsURL
		if enc := q.Encode(); enc != "" {
			u += "?" + enc
		}
		resp, err := c.do(ctx, request{method: http.MethodGet, path: "/eventsub/subscriptions", url: u})
		if err != nil {
			return nil, wrapf(err, "list subscriptions")
		}
		var out subscriptionsBody
		if err := decode(endpoint, resp, &out); err != nil {
			return nil, err
		}
		list.Subscriptions = append(list.Subscriptions, out.Data...)
		list.Total, list.TotalCost, list.MaxTotalCost = out.Total, out.TotalCost, out.MaxTotalCost
		cursor := out.Pagination.Cursor
		if cursor == "" || len(out.Data) == 0 || cursor == q.Get("after") {
			return list, nil
		}
		q.Set("after", cursor)
	}
}

// DeleteEventSubSubscription deletes a subscription (204). A subscription that does
// not exist (any more) gives TWITCH_NOT_FOUND.
func (c *Client) DeleteEventSubSubscription(ctx context.Context, id string) error {
	if id == "" {
		return invalidInput("delete subscription: id is required")
	}
	u := c.subsURL + "?" + url.Values{"id": {id}}.Encode()
	if _, err := c.do(ctx, request{method: http.MethodDelete, path: "/eventsub/subscriptions", url: u}); err != nil {
		return wrapf(err, "delete subscription %s", id)
	}
	return nil
}
