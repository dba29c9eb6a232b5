// Command twitchctl drives the local stack (`make run`) in the spirit of Twitch's own
// CLI: it triggers EventSub notifications and socket events on the fake Twitch
// through its control API, and injects egress events into the Pub/Sub emulator.
//
//	twitchctl trigger channel.follow|channel.update [--broadcaster login] [--user login] [--title t] [--category c]
//	twitchctl reconnect | drop | silence [--session id]
//	twitchctl close <code> [--session id]
//	twitchctl revoke <type> [--broadcaster login] [--reason r]
//	twitchctl sessions | deliveries | users [--json]
//	twitchctl help [command]
//	twitchctl egress --type dm|chat --text "..." [--channel #login] [--user id] [--wait] [--json]
//	twitchctl login [--client-id id] [--role bot] [--scopes "..."]
//	twitchctl conduits [--json]
//	twitchctl shard disable|kill-socket <shard> [--conduit id] [--status s] [--code n] [--json]
//	twitchctl channel add|remove <login|id> [--id id]
//
// Addresses: --control (TWITCHCTL_CONTROL, default http://127.0.0.1:8090), --pubsub
// (PUBSUB_EMULATOR_HOST, default 127.0.0.1:8085), --firestore (FIRESTORE_EMULATOR_HOST,
// default 127.0.0.1:8086, "cloud" for Google Cloud), --project (GOOGLE_CLOUD_PROJECT,
// default bitbrat-local), --prefix (BUS_PREFIX): the defaults are what `make run` uses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

const usage = `twitchctl drives the local stack (make run).

usage: twitchctl [global flags] <command> [args] [flags]

commands:
  trigger channel.follow|channel.update  send an EventSub notification
        [--broadcaster login] [--user login] [--title t] [--category c]
  reconnect [--session id]               send session_reconnect on the socket
  revoke <type> [--broadcaster login] [--reason authorization_revoked|user_removed|moderator_removed|version_removed]
  close <code> [--session id]            close the socket with a close code (4000-4007)
  drop [--session id]                    cut the socket's TCP connection, no close frame
  silence [--session id]                 stop keepalives (a zombie socket)
  sessions [--json]                      live sockets and subscriptions
  deliveries [--json]                    chat messages and whispers the fake Helix received
  users [--json]                         the fake's seeded users
  egress --type dm|chat --text "..."     publish an egress event to internal.egress.v1
        [--channel #login] [--user id] [--correlation-id id] [--wait [--wait-for 30s]] [--json]
  login [--client-id id] [--role bot|broadcaster] [--scopes "a b"]
                                         get a user token through Twitch's device code flow,
                                         validate it, store it in Firestore (oauth/twitch/<role>/token)
  conduits [--json]                      conduits and their shards (conduit and serverless mode)
  shard disable|kill-socket <shard>      disable a shard, or close a WebSocket shard's socket
        [--conduit id] [--status s] [--code 4000] [--json]
  channel add|remove <login|id> [--id id]
                                         add or remove a channel in the Firestore channels
                                         collection, which the conduit reconciler serves
  help [command]                         this text, or one command's flags

-h, --help and help print this and exit 0; a usage error exits 2, a failed command 1.

global flags (also accepted after the command):
`

type globals struct {
	control, pubsub, project, prefix string
	firestore, database              string
	timeout                          time.Duration
}

// hooks are what tests replace: the device-code poller's clock and sleep.
type hooks struct {
	poll twitch.DevicePoll
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.control, "control", g.control, "fake Twitch control API (TWITCHCTL_CONTROL)")
	fs.StringVar(&g.pubsub, "pubsub", g.pubsub, "Pub/Sub emulator host:port (PUBSUB_EMULATOR_HOST)")
	fs.StringVar(&g.project, "project", g.project, "project id (GOOGLE_CLOUD_PROJECT)")
	fs.StringVar(&g.prefix, "prefix", g.prefix, "topic prefix (BUS_PREFIX)")
	fs.StringVar(&g.firestore, "firestore", g.firestore, "Firestore emulator host:port, or \"cloud\" for the project's Firestore (FIRESTORE_EMULATOR_HOST)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "give up after this long (login and egress --wait bound themselves)")
}

func run(args []string, stdout, stderr io.Writer) int { return runWith(args, stdout, stderr, hooks{}) }

func runWith(args []string, stdout, stderr io.Writer, h hooks) int {
	g := &globals{
		firestore: envOr("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8086"),
		database:  envOr("FIRESTORE_DATABASE", "(default)"),
		control:   envOr("TWITCHCTL_CONTROL", faketwitch.DefaultControlURL),
		pubsub:    envOr("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
		project:   envOr("GOOGLE_CLOUD_PROJECT", "bitbrat-local"),
		prefix:    os.Getenv("BUS_PREFIX"),
		timeout:   15 * time.Second,
	}
	top := flag.NewFlagSet("twitchctl", flag.ContinueOnError)
	top.SetOutput(io.Discard) // errors and usage are printed below, once
	g.register(top)
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, usage)
		top.SetOutput(w)
		top.PrintDefaults()
		top.SetOutput(io.Discard)
	}
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // asked for: stdout, success
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "twitchctl: %v\n\n", err)
		printUsage(stderr)
		return 2
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, "twitchctl: no command given\n\n")
		printUsage(stderr)
		return 2
	}
	cmd, rest := top.Arg(0), top.Args()[1:]
	if cmd == "help" {
		if len(rest) == 0 {
			printUsage(stdout)
			return 0
		}
		cmd, rest = rest[0], []string{"-h"}
	}
	c, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "twitchctl: unknown command %q (twitchctl help lists them)\n", cmd)
		return 2
	}
	fs := flag.NewFlagSet("twitchctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	a := &cmdArgs{}
	c.flags(fs, a)
	printCmdUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: twitchctl %s\n\nflags:\n", c.synopsis(cmd))
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	pos, err := parseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printCmdUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "twitchctl %s: %v\n\n", cmd, err)
		printCmdUsage(stderr)
		return 2
	}
	if msg := c.checkArgs(cmd, pos); msg != "" {
		fmt.Fprintf(stderr, "twitchctl: %s\n", msg)
		return 2
	}
	a.pos = pos
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	if c.long || a.wait {
		// The command bounds its own wait (the device code's lifetime, --wait-for) and
		// each call inside it; g.timeout bounds those calls.
		ctx, cancel = context.WithCancel(context.Background())
	}
	defer cancel()
	env := &cmdEnv{g: g, out: stdout, ctl: &faketwitch.Client{BaseURL: strings.TrimRight(g.control, "/")}, hooks: h,
		secret: os.Getenv("TWITCH_CLIENT_SECRET")}
	if err := c.run(ctx, env, a); err != nil {
		fmt.Fprintln(stderr, "twitchctl:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// parseInterleaved parses flags anywhere among the positional arguments (the flag
// package stops at the first positional one).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// cmdArgs holds every command's flags; each command registers the ones it reads.
type cmdArgs struct {
	pos                                []string
	broadcaster, user, title, category string
	session, reason                    string
	kind, text, channel, correlationID string
	json, wait                         bool
	waitFor                            time.Duration
	clientID, authURL, role, scopes    string
	conduit, channelID                 string
	code                               int
}

type cmdEnv struct {
	g     *globals
	out   io.Writer
	ctl   *faketwitch.Client
	hooks hooks
	// secret is TWITCH_CLIENT_SECRET, for a confidential app's device-code poll.
	secret string
}

type command struct {
	// args is how many positional arguments the command takes; arg names the one it
	// takes, says what it is and gives an example: "code|a close code|4000".
	args int
	arg  string
	// long commands bound their own waits instead of --timeout (login).
	long  bool
	flags func(*flag.FlagSet, *cmdArgs)
	run   func(context.Context, *cmdEnv, *cmdArgs) error
}

// synopsis is the command's first usage line.
func (c command) synopsis(name string) string {
	if c.args == 0 {
		return name + " [flags]"
	}
	short, _, _ := strings.Cut(c.arg, "|")
	return fmt.Sprintf("%s <%s> [flags]", name, short)
}

// checkArgs says in words what is wrong with the positional arguments, or "".
func (c command) checkArgs(name string, pos []string) string {
	switch {
	case len(pos) == c.args:
		return ""
	case c.args == 0:
		return fmt.Sprintf("%s takes no arguments, only flags (got %q); see twitchctl help %s", name, strings.Join(pos, " "), name)
	}
	parts := strings.SplitN(c.arg+"||", "|", 4) // name, description, example, rest
	what, example := parts[1], parts[2]
	if len(pos) < c.args {
		return fmt.Sprintf("%s needs %s, e.g. twitchctl %s %s", name, what, name, example)
	}
	n := "one argument"
	if c.args > 1 {
		n = strconv.Itoa(c.args) + " arguments"
	}
	return fmt.Sprintf("%s takes %s, %s (got %q); put flag values after their flag", name, n, what, strings.Join(pos, " "))
}

func sessionFlag(fs *flag.FlagSet, a *cmdArgs) {
	fs.StringVar(&a.session, "session", "", "session id (default: the newest live socket)")
}

func jsonFlag(fs *flag.FlagSet, a *cmdArgs) {
	fs.BoolVar(&a.json, "json", false, "print the fake's answer as JSON")
}

// printJSON writes v indented, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var commands = map[string]command{
	"trigger": {args: 1, arg: "type|a subscription type|channel.follow", flags: func(fs *flag.FlagSet, a *cmdArgs) {
		fs.StringVar(&a.broadcaster, "broadcaster", "", "channel login (default bitbrat_demo)")
		fs.StringVar(&a.user, "user", "", "follower login (channel.follow; default: the next viewer)")
		fs.StringVar(&a.title, "title", "", "stream title (channel.update)")
		fs.StringVar(&a.category, "category", "", "category name (channel.update)")
	}, run: trigger},
	"reconnect": {flags: sessionFlag, run: func(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
		r, err := e.ctl.Reconnect(ctx, faketwitch.SessionRequest{Session: a.session})
		if err == nil {
			fmt.Fprintf(e.out, "session_reconnect sent on session %s; the connector should move to the new socket now\n", r.Session)
		}
		return err
	}},
	"revoke": {args: 1, arg: "type|a subscription type|channel.follow", flags: func(fs *flag.FlagSet, a *cmdArgs) {
		fs.StringVar(&a.broadcaster, "broadcaster", "", "only this channel (login)")
		fs.StringVar(&a.reason, "reason", "", "revocation status (default authorization_revoked)")
	}, run: func(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
		r, err := e.ctl.Revoke(ctx, faketwitch.RevokeRequest{Type: a.pos[0], Broadcaster: a.broadcaster, Reason: a.reason})
		if err == nil {
			fmt.Fprintf(e.out, "revoked %d %s subscription(s): %s\n", len(r.Revoked), a.pos[0], strings.Join(r.Revoked, ", "))
		}
		return err
	}},
	"close": {args: 1, arg: "code|a close code (4000-4007)|4000", flags: sessionFlag, run: func(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
		code, err := strconv.Atoi(a.pos[0])
		if err != nil {
			return usageError{fmt.Sprintf("close code %q is not a number (Twitch uses 4000-4007)", a.pos[0])}
		}
		r, err := e.ctl.Close(ctx, faketwitch.CloseRequest{Code: code, Session: a.session})
		if err == nil {
			fmt.Fprintf(e.out, "session %s closed with code %d\n", r.Session, code)
		}
		return err
	}},
	"drop": {flags: sessionFlag, run: func(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
		r, err := e.ctl.Drop(ctx, faketwitch.SessionRequest{Session: a.session})
		if err == nil {
			fmt.Fprintf(e.out, "session %s: TCP connection cut\n", r.Session)
		}
		return err
	}},
	"silence": {flags: sessionFlag, run: func(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
		r, err := e.ctl.Silence(ctx, faketwitch.SessionRequest{Session: a.session})
		if err == nil {
			fmt.Fprintf(e.out, "session %s: keepalives stopped; the connector should notice within its keepalive timeout\n", r.Session)
		}
		return err
	}},
	"sessions":   {flags: jsonFlag, run: sessions},
	"deliveries": {flags: jsonFlag, run: deliveries},
	"users":      {flags: jsonFlag, run: users},
	"egress": {flags: func(fs *flag.FlagSet, a *cmdArgs) {
		fs.StringVar(&a.kind, "type", "chat", "dm or chat")
		fs.StringVar(&a.text, "text", "", "the text to deliver (required)")
		fs.StringVar(&a.channel, "channel", "#"+faketwitch.Channels[0].Login, "channel, #login")
		fs.StringVar(&a.user, "user", faketwitch.Viewers[0].ID, "recipient's Twitch user id (dm)")
		fs.StringVar(&a.correlationID, "correlation-id", "", "correlation id (default: a new uuid)")
		fs.BoolVar(&a.wait, "wait", false, "wait for the delivery outcome Finalize records (events/{correlationId} in Firestore) and print it")
		fs.DurationVar(&a.waitFor, "wait-for", 30*time.Second, "with --wait: give up after this long")
		jsonFlag(fs, a)
	}, run: egress},
	"login": {long: true, flags: loginFlags, run: login},
}

func trigger(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	r, err := e.ctl.Trigger(ctx, faketwitch.TriggerRequest{Type: a.pos[0], Broadcaster: a.broadcaster, User: a.user,
		Title: a.title, Category: a.category})
	if err != nil {
		return err
	}
	who := ""
	if r.User != "" {
		who = " by " + r.User
	}
	fmt.Fprintf(e.out, "%s sent for #%s%s (EventSub message id %s)\n", r.Type, r.Broadcaster, who, strings.Join(r.MessageIDs, ", "))
	return nil
}

func sessions(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	s, err := e.ctl.Sessions(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(e.out, s)
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tCONNECTED\tKEEPALIVE\tSUBSCRIPTIONS\tRECONNECTING")
	for _, x := range s.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%ds\t%d\t%v\n", x.ID, x.ConnectedAt.Local().Format("15:04:05"), x.KeepaliveSeconds, x.Subscriptions, x.Reconnecting)
	}
	fmt.Fprintln(tw, "\nSUBSCRIPTION\tTYPE\tVERSION\tSTATUS\tCHANNEL")
	for _, x := range s.Subscriptions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.ID, x.Type, x.Version, x.Status, x.Broadcaster)
	}
	return tw.Flush()
}

func deliveries(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	d, err := e.ctl.Deliveries(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(e.out, d)
	}
	fmt.Fprintf(e.out, "chat messages (%d):\n", len(d.Chat))
	for _, c := range d.Chat {
		status := "sent"
		if !c.Sent {
			status = "dropped: " + c.DropCode
		}
		fmt.Fprintf(e.out, "  %s #%s <%s> %s [%s]\n", c.Time.Local().Format("15:04:05"), c.Channel, c.Sender, c.Message, status)
	}
	fmt.Fprintf(e.out, "whispers (%d):\n", len(d.Whispers))
	for _, w := range d.Whispers {
		fmt.Fprintf(e.out, "  %s %s -> %s: %s\n", w.Time.Local().Format("15:04:05"), w.From, w.To, w.Message)
	}
	return nil
}

func users(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	us, err := e.ctl.Users(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(e.out, us)
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOGIN\tROLE")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.ID, u.Login, u.Role)
	}
	return tw.Flush()
}
