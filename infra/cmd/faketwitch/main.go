// Command faketwitch serves the fake Twitch (Helix, OAuth, EventSub WebSocket) on its
// own, seeded with the bot bitbrat_bot (id 900), the channels bitbrat_demo and
// cooler_user and a few viewers, plus the control API twitchctl drives. `make run`
// runs the same server in-process; this command is for pointing a connector you run
// yourself at it.
//
//	go run ./infra/cmd/faketwitch [-addr 127.0.0.1:8089] [-control 127.0.0.1:8090]
//
// With FIRESTORE_EMULATOR_HOST set it also writes the bot's token document
// (oauth/twitch/bot/token) in GOOGLE_CLOUD_PROJECT (default bitbrat-local), so that a
// connector started with the printed variables finds its token there. The token
// itself is never printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "faketwitch:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8089", "fake Twitch listen address (Helix, OAuth, EventSub WebSocket)")
	control := flag.String("control", "127.0.0.1:8090", "control API listen address")
	grace := flag.Duration("reconnect-grace", 30*time.Second, "how long an old socket stays open after session_reconnect")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := faketwitch.Start(faketwitch.Options{Addr: *addr, ControlAddr: *control, ReconnectGrace: *grace})
	if err != nil {
		return err
	}
	defer srv.Close()

	seeded := ""
	if host := os.Getenv("FIRESTORE_EMULATOR_HOST"); host != "" {
		project := os.Getenv("GOOGLE_CLOUD_PROJECT")
		if project == "" {
			project = config.DefaultLocalProject
		}
		fs, err := store.NewClient(ctx, project, os.Getenv("FIRESTORE_DATABASE"), store.WithEmulator(host))
		if err != nil {
			return err
		}
		err = faketwitch.SeedBotToken(ctx, fs, srv.BotToken())
		fs.Close()
		if err != nil {
			return err
		}
		seeded = fmt.Sprintf("bot token document written to %s in project %s (Firestore emulator %s)", faketwitch.BotTokenDocPath, project, host)
	}

	tw := srv.Twitch
	fmt.Printf("fake Twitch on %s, control API on %s\n", srv.URL(), srv.ControlURL())
	if seeded != "" {
		fmt.Println(seeded)
	} else {
		fmt.Println("FIRESTORE_EMULATOR_HOST is unset: no token document written")
	}
	fmt.Println("point a connector or the functions at it with:")
	for _, kv := range [][2]string{
		{"TWITCH_CLIENT_ID", tw.ClientID()},
		{"TWITCH_BOT_USER_ID", faketwitch.BotID},
		{"TWITCH_CHANNELS", strings.Join(srv.ChannelLogins(), ",")},
		{"TWITCH_API_BASE_URL", tw.APIBaseURL()},
		{"TWITCH_AUTH_BASE_URL", tw.AuthBaseURL()},
		{"TWITCH_EVENTSUB_WS_URL", tw.EventSubWSURL()},
	} {
		fmt.Printf("  export %s=%s\n", kv[0], kv[1])
	}
	fmt.Println("  (TWITCH_CLIENT_SECRET, not printed, is twitchtest's default; without it tokens are just not refreshed)")
	fmt.Printf("drive it with: go run ./infra/cmd/twitchctl --control %s trigger channel.follow\n", srv.ControlURL())
	<-ctx.Done()
	fmt.Println("faketwitch: stopping")
	return nil
}
