package twitchtest

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// Response is a scripted answer.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Script queues responses for an endpoint (method and full path, e.g. "POST",
// "/helix/chat/messages"): the next len(rs) requests to it get them in order, before
// any token or input checks, then normal behaviour resumes.
func (s *Server) Script(method, path string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := method + " " + path
	s.scripts[k] = append(s.scripts[k], rs...)
}

// ErrorResponse is Twitch's error shape: {"error": "<status text>", "status": N,
// "message": "..."}.
func ErrorResponse(status int, message string) Response {
	b, _ := json.Marshal(map[string]any{"error": http.StatusText(status), "status": status, "message": message})
	return Response{Status: status, Header: jsonHeader(), Body: string(b)}
}

// RateLimitedResponse is a 429 with Ratelimit-Limit, Ratelimit-Remaining: 0 and
// Ratelimit-Reset set to reset; message may name the limit (e.g. "number of websocket
// transports limit exceeded").
func RateLimitedResponse(limit int, reset time.Time, message string) Response {
	r := ErrorResponse(http.StatusTooManyRequests, message)
	r.Header.Set("Ratelimit-Limit", itoa(limit))
	r.Header.Set("Ratelimit-Remaining", "0")
	r.Header.Set("Ratelimit-Reset", itoa(int(reset.Unix())))
	return r
}

// ChatDroppedResponse is Send Chat Message's 200 with is_sent false and the reason.
func ChatDroppedResponse(code, message string) Response {
	b, _ := json.Marshal(map[string]any{"data": []map[string]any{{
		"message_id": "", "is_sent": false, "drop_reason": map[string]string{"code": code, "message": message},
	}}})
	return Response{Status: http.StatusOK, Header: jsonHeader(), Body: string(b)}
}

func jsonHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h
}

// nextScripted pops the next scripted response for the request's endpoint.
func (s *Server) nextScripted(r *http.Request) (Response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := r.Method + " " + r.URL.Path
	q := s.scripts[k]
	if len(q) == 0 {
		return Response{}, false
	}
	s.scripts[k] = q[1:]
	return q[0], true
}

// scripted records the request and serves a scripted response if one is queued.
func (s *Server) scripted(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, "unreadable body")
			return
		}
		s.record(r, body)
		if resp, ok := s.nextScripted(r); ok {
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.Status)
			_, _ = io.WriteString(w, resp.Body)
			return
		}
		h(w, r, body)
	}
}
