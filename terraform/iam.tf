# Identities and least privilege.
#
#   function SAs (one each)  datastore.user on the shared database only (egress also on the
#                            private one: the bot's token); pubsub.publisher on their
#                            output topics only;
#                            secretAccessor on the client secret (Twitch callers only)
#   connector SA             datastore.user on the private database (its state, the
#                            token, the conduit); publisher on the raw topic and on
#                            internal.ingress.v1 (status events); secretAccessor (and
#                            the webhook secret in conduit mode with webhook shards);
#                            none of it in serverless mode, where no connector runs
#   webhook SA (webhook.tf)  datastore.user on the shared database; publisher on raw and
#                            on internal.ingress.v1 (revocation status events); the
#                            webhook secret
#   reconcile SA             serverless mode (reconcile.tf): datastore.user on the
#                            connector's database; publisher on internal.ingress.v1;
#                            the client secret and the webhook secret
#   egress_publishers        publisher on the egress topics: who may make the bot speak
#   push SA                  run.invoker on each function's Cloud Run service: Pub/Sub
#                            push subscriptions sign their requests as it
#   build SA                 what Cloud Build needs to build the functions
#   Pub/Sub service agent    mints the push SA's OIDC tokens; publishes dead letters and
#                            acknowledges the source messages it dead-lettered
#
# No Eventarc trigger exists (pubsub.tf), so nothing needs eventarc.eventReceiver.

resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = each.value.name
  display_name = "Twitch Edge ${each.value.entry_point} function"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "connector" {
  account_id   = "${var.name_prefix}-connector"
  display_name = "Twitch Edge EventSub connector"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "push" {
  account_id   = "${var.name_prefix}-push"
  display_name = "Twitch Edge Pub/Sub push (invokes the functions)"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "Twitch Edge function builds"

  depends_on = [google_project_service.enabled]
}

# --- Firestore --------------------------------------------------------------------------

resource "google_project_iam_member" "datastore_user" {
  for_each = local.datastore_access

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value.member

  # Only this database: Normalize and Finalize, which parse input from the bus, cannot
  # read or overwrite the bot's token or the connector's lease.
  condition {
    title      = "only-${each.value.database}"
    expression = "resource.name == \"projects/${var.project_id}/databases/${each.value.database}\""
  }
}

# --- Pub/Sub ----------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publishers

  topic  = google_pubsub_topic.topic[each.value.topic].id
  role   = "roles/pubsub.publisher"
  member = each.value.member
}

resource "google_cloud_run_service_iam_member" "push_invokes_function" {
  for_each = google_cloudfunctions2_function.function

  location = each.value.location
  service  = each.value.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letters" {
  topic  = google_pubsub_topic.topic["deadletter"].id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  for_each = google_pubsub_subscription.trigger

  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Secret Manager ---------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "twitch_client_secret" {
  for_each = merge(
    { for k, f in local.functions : k => google_service_account.function[k].member if f.twitch },
    local.connector_enabled ? { connector = google_service_account.connector.member } : {},
    local.serverless ? { reconcile = google_service_account.reconcile[0].member } : {},
  )

  secret_id = google_secret_manager_secret.twitch_client_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}

# --- Builds -----------------------------------------------------------------------------

# A dedicated build identity: new projects no longer give the default one these roles.
# Cloud Functions copies the source into its own gcf-v2-sources bucket before Cloud
# Build reads it, hence objectViewer on the project rather than on our bucket.
resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/storage.objectViewer"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_writes_images" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}
