package reconcile_test

import (
	"os"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.PubSub, emulators.Firestore))
}
