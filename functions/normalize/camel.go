package normalize

import (
	"errors"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// topMembers are the top-level string members Generic reads from an event.
type topMembers struct{ userID, broadcasterUserID, broadcasterUserLogin string }

var errNotObject = errors.New("not a JSON object")

// camelObject copies the JSON object raw with every object key, at any depth,
// rewritten from snake_case to camelCase: Twitch's member order, values byte for byte
// (numbers keep their exact digits). It is one pass over bytes that are already known
// to be valid JSON (the frame decode checked them); on anything else it does not panic
// or loop, and the encoder's check of the payload refuses the result.
func camelObject(raw []byte) (jsontext.Value, topMembers, error) {
	var top topMembers
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, top, errNotObject
	}
	out := make([]byte, 0, len(raw))
	depth := 0
	member := "" // the top-level member whose value comes next
	for i < len(raw) {
		c := raw[i]
		if c != '"' {
			switch c {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			out = append(out, c)
			i++
			continue
		}
		end, escaped := stringEnd(raw, i)
		s := raw[i:end] // the string with its quotes
		i = end
		j := skipSpace(raw, i)
		if j < len(raw) && raw[j] == ':' { // an object member's name
			if !escaped && len(s) >= 2 {
				// The common case, without allocating: the name's bytes as sent.
				inner := s[1 : len(s)-1]
				if depth == 1 {
					member = string(inner) // small; only the top level's names
				}
				out = append(out, '"')
				out = appendCamel(out, inner)
				out = append(out, '"')
				continue
			}
			name := unquote(s, escaped)
			if depth == 1 {
				member = name
			}
			out = appendQuoted(out, camelCase(name), s, escaped)
			continue
		}
		if depth == 1 {
			switch member {
			case "user_id":
				top.userID = unquote(s, escaped)
			case "broadcaster_user_id":
				top.broadcasterUserID = unquote(s, escaped)
			case "broadcaster_user_login":
				top.broadcasterUserLogin = unquote(s, escaped)
			}
		}
		out = append(out, s...)
	}
	return out, top, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i] (a quote),
// or len(b) if it is not closed, and whether it holds escapes.
func stringEnd(b []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return len(b), escaped
}

// unquote is the text of the quoted JSON string s ("" if it is malformed).
func unquote(s []byte, escaped bool) string {
	if !escaped {
		if len(s) < 2 {
			return ""
		}
		return string(s[1 : len(s)-1])
	}
	u, err := jsontext.AppendUnquote(nil, s)
	if err != nil {
		return ""
	}
	return string(u)
}

// appendQuoted appends name quoted; orig (the name as sent) is reused when camelCase
// did not change it.
func appendQuoted(out []byte, name string, orig []byte, escaped bool) []byte {
	if !escaped && len(orig) >= 2 && string(orig[1:len(orig)-1]) == name {
		return append(out, orig...)
	}
	if !escaped && !strings.ContainsAny(name, "\"\\") {
		out = append(out, '"')
		out = append(out, name...)
		return append(out, '"')
	}
	q, _ := jsontext.AppendQuote(out, name)
	return q
}

// appendCamel appends name with snake_case turned into camelCase (see camelCase).
func appendCamel(out, name []byte) []byte {
	start := len(out)
	up := false
	for _, c := range name {
		switch {
		case c == '_':
			up = len(out) > start
		case up && 'a' <= c && c <= 'z':
			out = append(out, c-'a'+'A')
			up = false
		default:
			out = append(out, c)
			up = false
		}
	}
	return out
}
