package main

import (
	"os"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// login and egress --wait need Firestore, egress --wait Pub/Sub too (make test shares
// one pair; alone, RunTests starts them).
func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.PubSub, emulators.Firestore)) }
