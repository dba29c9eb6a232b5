package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// The conduit commands (conduit mode and serverless mode of `make run`):
//
//	twitchctl conduits [--json]                            the fake's conduits and shards
//	twitchctl shard disable|kill-socket <shard> [--conduit id] [--status s] [--code n]
//	twitchctl channel add|remove <login|id> [--id id]      the Firestore channels collection

func init() {
	commands["conduits"] = command{flags: jsonFlag, run: conduits}
	commands["shard"] = command{args: 2, arg: "action and shard|an action (disable or kill-socket) and a shard id|disable 0",
		flags: func(fs *flag.FlagSet, a *cmdArgs) {
			fs.StringVar(&a.conduit, "conduit", "", "conduit id (default: the newest conduit)")
			fs.StringVar(&a.reason, "status", "", "disable: the disabled status to set (default websocket_disconnected)")
			fs.IntVar(&a.code, "code", 0, "kill-socket: the close code (4000-4007; default 4000)")
			jsonFlag(fs, a)
		}, run: shard}
	commands["channel"] = command{args: 2, arg: "action and channel|an action (add or remove) and a channel login or user id|add cooler_user",
		flags: func(fs *flag.FlagSet, a *cmdArgs) {
			fs.StringVar(&a.channelID, "id", "", "the broadcaster's user id (default: the fake's user with that login; a numeric argument is the id)")
		}, run: channel}
}

func conduits(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	cs, err := e.ctl.Conduits(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(e.out, cs)
	}
	if len(cs) == 0 {
		fmt.Fprintln(e.out, "no conduits (the stack runs in WebSocket mode, or the connector has not created one yet)")
		return nil
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	for _, c := range cs {
		fmt.Fprintf(tw, "conduit %s (%d shards)\n", c.ID, len(c.Shards))
		fmt.Fprintln(tw, "  SHARD\tSTATUS\tMETHOD\tSESSION / CALLBACK")
		for _, s := range c.Shards {
			where := s.SessionID
			if s.Method == "webhook" {
				where = s.Callback
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.ID, s.Status, s.Method, where)
		}
	}
	return tw.Flush()
}

// newestConduit is the conduit a shard command means when --conduit is not given.
func newestConduit(ctx context.Context, e *cmdEnv) (string, error) {
	cs, err := e.ctl.Conduits(ctx)
	if err != nil {
		return "", err
	}
	if len(cs) == 0 {
		return "", errors.New("the fake has no conduit (is the stack in conduit or serverless mode? make run TRANSPORT=conduit)")
	}
	return cs[len(cs)-1].ID, nil
}

func shard(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	action, id := a.pos[0], a.pos[1]
	if action != "disable" && action != "kill-socket" {
		return usageError{fmt.Sprintf("shard %q: want disable or kill-socket", action)}
	}
	if _, err := strconv.Atoi(id); err != nil {
		return usageError{fmt.Sprintf("shard id %q is not a number (shards are 0..n-1)", id)}
	}
	if a.code != 0 && (a.code < 4000 || a.code > 4999) {
		return usageError{fmt.Sprintf("--code %d: want 4000-4999 (Twitch uses 4000-4007)", a.code)}
	}
	cd := a.conduit
	if cd == "" {
		var err error
		if cd, err = newestConduit(ctx, e); err != nil {
			return err
		}
	}
	req := faketwitch.ShardRequest{Conduit: cd, Shard: id, Status: a.reason, Code: a.code}
	var (
		r   faketwitch.ShardResult
		err error
	)
	if action == "disable" {
		r, err = e.ctl.DisableShard(ctx, req)
	} else {
		r, err = e.ctl.KillShardSocket(ctx, req)
	}
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(e.out, r)
	}
	switch action {
	case "disable":
		fmt.Fprintf(e.out, "shard %s of conduit %s disabled (%s); its holder should re-associate it\n", id, cd, r.Shard.Status)
	default:
		fmt.Fprintf(e.out, "shard %s of conduit %s: socket closed, shard now %s; its holder should reconnect and PATCH it\n", id, cd, r.Shard.Status)
	}
	return nil
}

func channel(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	action, name := a.pos[0], strings.ToLower(strings.TrimPrefix(a.pos[1], "#"))
	if action != "add" && action != "remove" {
		return usageError{fmt.Sprintf("channel %q: want add or remove", action)}
	}
	id, login := a.channelID, ""
	switch {
	case id != "":
		login = name
	case twitch.IsUserID(name):
		id = name
	default:
		login = name
		us, err := e.ctl.Users(ctx)
		if err != nil {
			return fmt.Errorf("look up %s on the fake (or give --id): %w", name, err)
		}
		for _, u := range us {
			if strings.EqualFold(u.Login, name) {
				id = u.ID
			}
		}
		if id == "" {
			return fmt.Errorf("the fake has no user %q; give the broadcaster's id with --id", name)
		}
	}
	if !twitch.IsUserID(id) {
		return usageError{fmt.Sprintf("--id %q is not a Twitch user id (digits)", id)}
	}
	where, fs, err := openFirestore(ctx, e.g)
	if err != nil {
		return err
	}
	defer fs.Close()
	chs := store.NewChannels(fs, nil)
	call, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if action == "add" {
		if err := chs.Add(call, store.Channel{BroadcasterID: id, Login: login}); err != nil {
			return fmt.Errorf("add channel %s to %s (is it running? --firestore): %w", id, where, err)
		}
		fmt.Fprintf(e.out, "channel %s added to the channels collection (%s); the reconciler subscribes it on its next round\n", describe(id, login), where)
		return nil
	}
	if err := chs.Remove(call, id); err != nil {
		return fmt.Errorf("remove channel %s from %s (is it running? --firestore): %w", id, where, err)
	}
	fmt.Fprintf(e.out, "channel %s removed from the channels collection (%s); the reconciler deletes its subscriptions on its next round\n", describe(id, login), where)
	return nil
}

func describe(id, login string) string {
	if login == "" {
		return id
	}
	return login + " (" + id + ")"
}
