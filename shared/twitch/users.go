package twitch

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// maxUsersPerRequest is Get Users' limit on ids plus logins in one request.
const maxUsersPerRequest = 100

// User is a Twitch user as Get Users returns it (the fields this project uses).
type User struct {
	ID              string `json:"id"`
	Login           string `json:"login"`
	DisplayName     string `json:"display_name"`
	Type            string `json:"type"`
	BroadcasterType string `json:"broadcaster_type"`
}

// userCache keeps users for the life of the process: logins and ids of the channels
// and the bot do not change under us, and each lookup costs rate-limit points.
type userCache struct {
	mu      sync.RWMutex
	byLogin map[string]User
	byID    map[string]User
}

func (uc *userCache) get(login, id string) (User, bool) {
	uc.mu.RLock()
	defer uc.mu.RUnlock()
	if login != "" {
		u, ok := uc.byLogin[login]
		return u, ok
	}
	u, ok := uc.byID[id]
	return u, ok
}

func (uc *userCache) put(us []User) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	for _, u := range us {
		uc.byLogin[strings.ToLower(u.Login)] = u
		uc.byID[u.ID] = u
	}
}

// GetUsers returns the users with the given logins and ids, in request order (logins
// first), without duplicates. Users Twitch does not know are left out; compare
// lengths to find them. Known users come from the process-wide cache; the rest are
// fetched in batches of at most 100.
func (c *Client) GetUsers(ctx context.Context, logins, ids []string) ([]User, error) {
	const endpoint = "GET /users"
	type key struct{ login, id string }
	var want []key
	seen := map[key]bool{}
	for _, l := range logins {
		l = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#")))
		if l == "" {
			continue
		}
		if k := (key{login: l}); !seen[k] {
			seen[k] = true
			want = append(want, k)
		}
	}
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if !IsUserID(id) {
			return nil, invalidInput("get users: %q is not a Twitch user id", id)
		}
		if k := (key{id: id}); !seen[k] {
			seen[k] = true
			want = append(want, k)
		}
	}
	var missing []key
	for _, k := range want {
		if _, ok := c.users.get(k.login, k.id); !ok {
			missing = append(missing, k)
		}
	}
	for len(missing) > 0 {
		n := min(len(missing), maxUsersPerRequest)
		batch := missing[:n]
		missing = missing[n:]
		q := url.Values{}
		for _, k := range batch {
			if k.login != "" {
				q.Add("login", k.login)
			} else {
				q.Add("id", k.id)
			}
		}
		resp, err := c.do(ctx, request{method: http.MethodGet, path: "/users", url: c.apiBase + "/users?" + q.Encode()})
		if err != nil {
			return nil, wrapf(err, "get users")
		}
		var out struct {
			Data []User `json:"data"`
		}
		if err := decode(endpoint, resp, &out); err != nil {
			return nil, err
		}
		for _, u := range out.Data {
			if u.ID == "" || u.Login == "" {
				return nil, malformed(endpoint, errorf("user without id or login"))
			}
		}
		c.users.put(out.Data)
	}
	res := make([]User, 0, len(want))
	got := map[string]bool{}
	for _, k := range want {
		if u, ok := c.users.get(k.login, k.id); ok && !got[u.ID] {
			got[u.ID] = true
			res = append(res, u)
		}
	}
	return res, nil
}
