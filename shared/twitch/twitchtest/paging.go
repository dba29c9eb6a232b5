package twitchtest

import (
	"encoding/base64"
	"net/http"
	"strconv"
)

// Helix pages with an opaque cursor; the fake's cursor is the base64 of the next
// item's index, so a client that builds or edits cursors itself is caught.

// pageStart reads the "after" cursor of r: the index to start at, 0 without one. A
// cursor the fake did not issue is answered 400 as Twitch does, and ok is false.
func pageStart(w http.ResponseWriter, r *http.Request) (start int, ok bool) {
	after := r.URL.Query().Get("after")
	if after == "" {
		return 0, true
	}
	b, err := base64.RawURLEncoding.DecodeString(after)
	n, err2 := strconv.Atoi(string(b))
	if err != nil || err2 != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "The cursor in the after query parameter is not valid")
		return 0, false
	}
	return n, true
}

// pagination is the response's pagination object: a cursor to end while items remain
// after it, empty on the last page.
func pagination(end, total int) map[string]string {
	p := map[string]string{}
	if end < total {
		p["cursor"] = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return p
}
