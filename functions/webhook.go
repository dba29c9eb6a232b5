package functions

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/functions/webhook"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// NameEventSubWebhook is the HTTP entry point Twitch delivers webhook messages to.
const NameEventSubWebhook = "EventSubWebhook"

// SettingWebhookSecret is the secret Twitch signs webhook messages with (the one
// given when a webhook shard or subscription is created).
const SettingWebhookSecret = "TWITCH_EVENTSUB_WEBHOOK_SECRET"

// ConduitName is the conduit's Firestore record (conduits/{name}), shared by the
// connector in conduit mode, EventSubReconcile and this function.
const ConduitName = store.ConduitName

// webhookRetention outlasts Twitch's retries of one message (and its 10-minute
// replay window) by far; Firestore's TTL policy removes the claims after it.
const webhookRetention = 24 * time.Hour

// readWebhookSecret reads and checks the secret: Twitch accepts 10 to 100 ASCII
// characters, so anything else cannot match what Twitch signs with.
func readWebhookSecret(get config.Lookup) (config.Secret, error) {
	s := config.NewReader(get).Secret(SettingWebhookSecret)
	v := s.Reveal()
	if !s.Set() {
		return "", &configError{fmt.Errorf("%s: required but not set", SettingWebhookSecret)}
	}
	if len(v) < 10 || len(v) > 100 {
		return "", &configError{fmt.Errorf("%s: %d characters, Twitch requires 10 to 100", SettingWebhookSecret, len(v))}
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", &configError{fmt.Errorf("%s: not printable ASCII, as Twitch requires", SettingWebhookSecret)}
		}
	}
	return s, nil
}

// eventSubWebhook builds the webhook service on first use. Until it can be built
// (configuration missing, clients not connected) every request answers 503, which
// Twitch retries.
var eventSubWebhook = func() http.HandlerFunc {
	var (
		mu  sync.Mutex
		svc *webhook.Service
	)
	get := func(ctx context.Context) (*webhook.Service, error) {
		mu.Lock()
		defer mu.Unlock()
		if svc != nil {
			return svc, nil
		}
		env, err := sharedEnv(ctx)
		if err != nil {
			return nil, err
		}
		secret, err := readWebhookSecret(config.Env())
		if err != nil {
			return nil, err
		}
		svc = newWebhookService(env, secret)
		return svc, nil
	}
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := get(r.Context())
		if err != nil {
			slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error(NameEventSubWebhook+": cannot start", "error", err.Error())
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
			return
		}
		s.ServeHTTP(w, r)
	}
}()

func newWebhookService(env *env, secret config.Secret) *webhook.Service {
	svc := &webhook.Service{
		Secret:       secret,
		Pub:          asyncPublisher{env.pub},
		Claims:       store.NewWebhookMessages(env.fs, webhookRetention, nil),
		Revocations:  store.NewConnectorState(env.fs, "eventsub", env.owner, nil),
		RawTopic:     env.topics.Raw,
		IngressTopic: env.topics.Ingress,
		Owner:        env.owner,
		Now:          time.Now,
		Log:          env.log.With("function", NameEventSubWebhook),
	}
	// The conduit's records (its revocations, which the reconciler does not
	// recreate) live in the connector's database. The public function never reaches
	// a private one (TWITCH_TOKEN_DATABASE): there the reconciler records the
	// revocation itself from Twitch's subscription list on its next round.
	if db := env.fns.TokenDatabase; db == "" || db == env.common.Database {
		svc.ConduitRevocations = store.NewConduitStore(env.fs, ConduitName, nil)
	}
	return svc
}

// asyncPublisher adapts *bus.Publisher to webhook.Publisher.
type asyncPublisher struct{ p *bus.Publisher }

func (a asyncPublisher) PublishAsync(ctx context.Context, topic string, data []byte, attrs map[string]string) webhook.Pending {
	return a.p.PublishAsync(ctx, topic, data, attrs)
}
