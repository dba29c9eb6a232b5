package faketwitch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// Trigger types the control API can send.
const (
	TypeFollow = "channel.follow"
	TypeUpdate = "channel.update"
)

// RevokeReasons are the statuses Twitch gives a revoked subscription.
var RevokeReasons = []string{"authorization_revoked", "user_removed", "moderator_removed", "version_removed"}

const maxBody = 64 << 10

// httpError is an answer other than 200, with a message for the user.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &httpError{http.StatusConflict, fmt.Sprintf(format, args...)}
}

// Handler is the control API:
//
//	POST /trigger    {type, broadcaster?, user?, title?, category?} → TriggerResult
//	POST /reconnect  {session?}          session_reconnect on the socket
//	POST /revoke     {type, broadcaster?, reason?}
//	POST /close      {code, session?}    close the socket with a close code
//	POST /drop       {session?}          cut the TCP connection (no close frame)
//	POST /silence    {session?}          stop keepalives (a zombie socket)
//	GET  /deliveries                     chat messages and whispers received
//	GET  /sessions                       live sockets and subscriptions
//	GET  /users                          seeded users
//	GET  /healthz
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("POST /trigger", handle(s.trigger))
	mux.HandleFunc("POST /reconnect", handle(s.reconnect))
	mux.HandleFunc("POST /revoke", handle(s.revoke))
	mux.HandleFunc("POST /close", handle(s.closeSession))
	mux.HandleFunc("POST /drop", handle(s.drop))
	mux.HandleFunc("POST /silence", handle(s.silence))
	mux.HandleFunc("GET /deliveries", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Deliveries()) })
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Sessions()) })
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, Users()) })
	s.conduitRoutes(mux) // conduits.go: GET /conduits, /conduits/lost; POST /conduits/disable, /conduits/kill
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: "no such control endpoint: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

// handle decodes the request body into Req (an empty body is the zero Req), calls
// fn, and writes its result or error as JSON.
func handle[Req, Resp any](fn func(Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decodeBody(r, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorBody{Error: err.Error()})
			return
		}
		resp, err := fn(req)
		if err != nil {
			status := http.StatusInternalServerError
			var he *httpError
			if errors.As(err, &he) {
				status = he.status
			}
			writeJSON(w, status, ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(b) > maxBody {
		return fmt.Errorf("body larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body is not the expected JSON object: %w", err)
	}
	if dec.More() {
		return errors.New("body has data after the JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Users lists the seeded users.
func Users() []UserView {
	out := []UserView{{ID: BotID, Login: BotLogin, DisplayName: "BitBrat_Bot", Role: "bot"}}
	for _, c := range Channels {
		out = append(out, UserView{ID: c.ID, Login: c.Login, DisplayName: c.DisplayName, Role: "channel"})
	}
	for _, v := range Viewers {
		out = append(out, UserView{ID: v.ID, Login: v.Login, DisplayName: v.DisplayName, Role: "viewer"})
	}
	return out
}

func userByLogin(login string) (UserView, bool) {
	login = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(login), "#"))
	for _, u := range Users() {
		if u.Login == login {
			return u, true
		}
	}
	return UserView{}, false
}

func loginByID(id string) string {
	for _, u := range Users() {
		if u.ID == id {
			return u.Login
		}
	}
	return id
}

func loginsOf(role string) string {
	var ls []string
	for _, u := range Users() {
		if u.Role == role {
			ls = append(ls, u.Login)
		}
	}
	return strings.Join(ls, ", ")
}

func channelByLogin(login string) (UserView, error) {
	if login == "" {
		c := Channels[0]
		return UserView{ID: c.ID, Login: c.Login, DisplayName: c.DisplayName, Role: "channel"}, nil
	}
	u, ok := userByLogin(login)
	if !ok || u.Role != "channel" {
		return UserView{}, badRequest("broadcaster %q is not a seeded channel (channels: %s)", login, loginsOf("channel"))
	}
	return u, nil
}

func (s *Server) trigger(req TriggerRequest) (TriggerResult, error) {
	b, err := channelByLogin(req.Broadcaster)
	if err != nil {
		return TriggerResult{}, err
	}
	res := TriggerResult{Type: req.Type, Broadcaster: b.Login}
	var ev map[string]any
	switch req.Type {
	case TypeFollow:
		if req.Title != "" || req.Category != "" {
			return res, badRequest("title and category apply to channel.update only")
		}
		var follower UserView
		if req.User == "" {
			v := s.nextViewer()
			follower = UserView{ID: v.ID, Login: v.Login}
		} else {
			u, ok := userByLogin(req.User)
			if !ok {
				return res, badRequest("user %q is not a seeded user (viewers: %s)", req.User, loginsOf("viewer"))
			}
			if u.ID == b.ID {
				return res, badRequest("a channel cannot follow itself")
			}
			follower = u
		}
		res.User = follower.Login
		ev = s.Twitch.FollowEvent(b.ID, follower.ID, time.Now())
	case TypeUpdate:
		if req.User != "" {
			return res, badRequest("user applies to channel.follow only")
		}
		title := req.Title
		if title == "" {
			title = "Live from the local stack " + time.Now().Format("15:04:05")
		}
		if len(title) > 140 {
			return res, badRequest("title is longer than Twitch's 140 characters")
		}
		catID, catName := "509658", "Just Chatting"
		if req.Category != "" {
			catID, catName = "509670", req.Category
		}
		ev = s.Twitch.UpdateEvent(b.ID, title, "en", catID, catName, nil)
	case "":
		return res, badRequest("type is required: %s or %s", TypeFollow, TypeUpdate)
	default:
		return res, badRequest("type %q is not one of %s, %s", req.Type, TypeFollow, TypeUpdate)
	}
	ids, err := s.Twitch.Notify(twitchtest.Notification{
		Type: req.Type, Condition: map[string]string{"broadcaster_user_id": b.ID}, Event: ev,
	})
	if errors.Is(err, twitchtest.ErrNoSubscription) {
		if st := s.revokedStatus(req.Type, b.ID); st != "" {
			return res, conflict("the %s subscription for %s was revoked (%s, e.g. by twitchctl revoke); the connector does not recreate a revoked subscription: restart make run to get it back",
				req.Type, b.Login, st)
		}
		return res, conflict("no enabled %s subscription for %s: is the connector running and ready?", req.Type, b.Login)
	}
	if err != nil {
		return res, err
	}
	res.MessageIDs = ids
	return res, nil
}

// revokedStatus is the revocation status of the newest type subscription for the
// broadcaster when no enabled one exists and it was revoked, or "": a trigger's 409
// then names the cause instead of suggesting the connector is down.
func (s *Server) revokedStatus(typ, broadcasterID string) string {
	status := ""
	for _, x := range s.Twitch.Subscriptions() { // oldest first
		if x.Type != typ || x.Condition["broadcaster_user_id"] != broadcasterID {
			continue
		}
		switch x.Status {
		case "authorization_revoked", "user_removed", "moderator_removed", "version_removed":
			status = x.Status
		default:
			status = ""
		}
	}
	return status
}

// pickSession returns the session named, or the newest live one not reconnecting.
func (s *Server) pickSession(id string) (string, error) {
	live := s.Twitch.Sessions()
	if id != "" {
		for _, ss := range live {
			if ss.ID == id {
				return id, nil
			}
		}
		return "", conflict("no live EventSub session %q", id)
	}
	for i := len(live) - 1; i >= 0; i-- {
		if !live[i].Reconnecting {
			return live[i].ID, nil
		}
	}
	return "", conflict("no live EventSub session: is the connector running?")
}

func (s *Server) reconnect(req SessionRequest) (SessionResult, error) {
	id, err := s.pickSession(req.Session)
	if err != nil {
		return SessionResult{}, err
	}
	u, err := s.Twitch.Reconnect(id)
	if err != nil {
		return SessionResult{}, conflict("reconnect session %s: %v", id, err)
	}
	return SessionResult{Session: id, ReconnectURL: u}, nil
}

func (s *Server) closeSession(req CloseRequest) (SessionResult, error) {
	if req.Code != 1000 && (req.Code < 4000 || req.Code > 4999) {
		return SessionResult{}, badRequest("code %d is not 1000 or 4000-4999 (Twitch uses 4000-4007)", req.Code)
	}
	id, err := s.pickSession(req.Session)
	if err != nil {
		return SessionResult{}, err
	}
	if err := s.Twitch.CloseSession(id, req.Code, closeReason(req.Code)); err != nil {
		return SessionResult{}, conflict("close session %s: %v", id, err)
	}
	return SessionResult{Session: id}, nil
}

// closeReason is Twitch's documented reason for a close code.
func closeReason(code int) string {
	switch code {
	case 4000:
		return "internal server error"
	case 4001:
		return "client sent inbound traffic"
	case 4002:
		return "client failed ping-pong"
	case 4003:
		return "connection unused"
	case 4004:
		return "reconnect grace time expired"
	case 4005:
		return "network timeout"
	case 4006:
		return "network error"
	case 4007:
		return "invalid reconnect"
	}
	return ""
}

func (s *Server) drop(req SessionRequest) (SessionResult, error) {
	id, err := s.pickSession(req.Session)
	if err != nil {
		return SessionResult{}, err
	}
	if err := s.Twitch.Drop(id); err != nil {
		return SessionResult{}, conflict("drop session %s: %v", id, err)
	}
	return SessionResult{Session: id}, nil
}

func (s *Server) silence(req SessionRequest) (SessionResult, error) {
	id, err := s.pickSession(req.Session)
	if err != nil {
		return SessionResult{}, err
	}
	if err := s.Twitch.Silence(id); err != nil {
		return SessionResult{}, conflict("silence session %s: %v", id, err)
	}
	return SessionResult{Session: id}, nil
}

func (s *Server) revoke(req RevokeRequest) (RevokeResult, error) {
	if req.Type != TypeFollow && req.Type != TypeUpdate {
		return RevokeResult{}, badRequest("type %q is not one of %s, %s", req.Type, TypeFollow, TypeUpdate)
	}
	reason := req.Reason
	if reason == "" {
		reason = RevokeReasons[0]
	}
	known := false
	for _, r := range RevokeReasons {
		known = known || r == reason
	}
	if !known {
		return RevokeResult{}, badRequest("reason %q is not one of %s", reason, strings.Join(RevokeReasons, ", "))
	}
	var bid string
	if req.Broadcaster != "" {
		b, err := channelByLogin(req.Broadcaster)
		if err != nil {
			return RevokeResult{}, err
		}
		bid = b.ID
	}
	res := RevokeResult{Revoked: []string{}}
	for _, x := range s.Twitch.EnabledSubscriptions() {
		if x.Type != req.Type || (bid != "" && x.Condition["broadcaster_user_id"] != bid) {
			continue
		}
		if err := s.Twitch.Revoke(x.ID, reason); err != nil {
			return res, err
		}
		res.Revoked = append(res.Revoked, x.ID)
	}
	if len(res.Revoked) == 0 {
		return res, conflict("no enabled %s subscription to revoke", req.Type)
	}
	return res, nil
}

// Deliveries returns what the fake Helix received, oldest first, with logins.
func (s *Server) Deliveries() Deliveries {
	d := Deliveries{Chat: []ChatDelivery{}, Whispers: []WhisperDelivery{}}
	for _, m := range s.Twitch.ChatMessages() {
		d.Chat = append(d.Chat, ChatDelivery{Time: m.Time, Channel: loginByID(m.BroadcasterID), Sender: loginByID(m.SenderID),
			Message: m.Message, MessageID: m.MessageID, Sent: m.IsSent, DropCode: m.DropCode})
	}
	for _, w := range s.Twitch.Whispers() {
		d.Whispers = append(d.Whispers, WhisperDelivery{Time: w.Time, From: loginByID(w.FromUserID), To: loginByID(w.ToUserID),
			ToID: w.ToUserID, Message: w.Message, Truncated: w.Truncated})
	}
	return d
}

// Sessions returns the live sockets and every subscription.
func (s *Server) Sessions() Sessions {
	out := Sessions{Sessions: []SessionView{}, Subscriptions: []SubscriptionView{}}
	for _, ss := range s.Twitch.Sessions() {
		out.Sessions = append(out.Sessions, SessionView{ID: ss.ID, ConnectedAt: ss.ConnectedAt,
			KeepaliveSeconds: ss.KeepaliveSeconds, Reconnecting: ss.Reconnecting, Subscriptions: ss.Subscriptions})
	}
	subs := s.Twitch.Subscriptions()
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].Status == "enabled" && subs[j].Status != "enabled" })
	for _, x := range subs {
		out.Subscriptions = append(out.Subscriptions, SubscriptionView{ID: x.ID, Type: x.Type, Version: x.Version,
			Status: x.Status, Broadcaster: loginByID(x.Condition["broadcaster_user_id"]), Session: x.Transport.SessionID})
	}
	return out
}
