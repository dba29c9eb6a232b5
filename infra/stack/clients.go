package stack

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// Emulator is the stack's own emulator of kind k, for fault tooling (pause, resume,
// restart); nil for one it was given (Options.PubSubHost, FirestoreHost).
func (s *Stack) Emulator(k emulators.Kind) *emulators.Emulator { return s.emus[k] }

func (s *Stack) setHost(k emulators.Kind, host string) {
	if k == emulators.PubSub {
		s.PubSubHost = host
	} else {
		s.FirestoreHost = host
	}
}

// connectClients builds the stack's own clients, on its emulators.
func (s *Stack) connectClients(ctx context.Context) error {
	var err error
	if s.PubSub, err = bus.NewClient(ctx, s.Project, bus.WithEmulator(s.PubSubHost)); err != nil {
		return err
	}
	if s.Firestore, err = store.NewClient(ctx, s.Project, "", store.WithEmulator(s.FirestoreHost)); err != nil {
		return err
	}
	return nil
}

// prepareToken seeds the fake's bot token document, or with real Twitch checks that
// a token is available.
func (s *Stack) prepareToken(ctx context.Context) error {
	if s.Fake != nil {
		return faketwitch.SeedBotToken(ctx, s.Firestore, s.Fake.BotToken())
	}
	if s.opts.RealTwitch.BotAccessToken.Set() {
		return nil
	}
	_, err := s.Firestore.Doc(faketwitch.BotTokenDocPath).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("real Twitch: no bot token: set TWITCH_BOT_ACCESS_TOKEN, or point FIRESTORE_EMULATOR_HOST at an emulator whose project %s holds %s",
			s.Project, faketwitch.BotTokenDocPath)
	}
	if err != nil {
		return fmt.Errorf("real Twitch: read %s: %w", faketwitch.BotTokenDocPath, err)
	}
	return nil
}

func loopbackAddr(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
