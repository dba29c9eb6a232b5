package normalize

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestCamelObject(t *testing.T) {
	tests := []struct {
		name, in, want string
		top            topMembers
	}{
		{"nested objects and arrays", `{"a_b":{"c_d":[{"e_f":1},2,"g_h"]},"n":null}`, `{"aB":{"cD":[{"eF":1},2,"g_h"]},"n":null}`, topMembers{}},
		{"numbers keep their digits", `{"big_n":12345678901234567890,"f":1.50e+3}`, `{"bigN":12345678901234567890,"f":1.50e+3}`, topMembers{}},
		{"values that look like keys are values", `{"k":"x_y:","l":["a_b",":"]}`, `{"k":"x_y:","l":["a_b",":"]}`, topMembers{}},
		{"escaped names are decoded first", `{"a\u005fb":"v\"_\\","q\"_x":1}`, `{"aB":"v\"_\\","q\"X":1}`, topMembers{}},
		{"top-level ids, not nested ones", `{"user_id":"u\u0031","broadcaster_user_id":"b","broadcaster_user_login":"l","x":{"user_id":"nested"}}`,
			`{"userId":"u\u0031","broadcasterUserId":"b","broadcasterUserLogin":"l","x":{"userId":"nested"}}`, topMembers{userID: "u1", broadcasterUserID: "b", broadcasterUserLogin: "l"}},
		{"whitespace", " { \"a_b\" : [ 1 , { \"c_d\" :\n2 } ] } ", `{"aB":[1,{"cD":2}]}`, topMembers{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, top, err := camelObject([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("output is not JSON: %s: %v", got, err)
			}
			_ = json.Unmarshal([]byte(tt.want), &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("camelObject(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if top != tt.top {
				t.Errorf("top members = %+v, want %+v", top, tt.top)
			}
		})
	}
	for _, in := range []string{`[1]`, `"s"`, ``, `  `} {
		if _, _, err := camelObject([]byte(in)); err == nil {
			t.Errorf("camelObject(%q): want an error", in)
		}
	}
	// Malformed input (never reaches it from Build) must not panic or loop.
	for _, in := range []string{`{"a`, `{"a\`, `{"a":"b\"`, `{"a_b"`, `{`} {
		_, _, _ = camelObject([]byte(in))
	}
}
