# The APIs this deployment uses. They stay enabled on destroy: other things in the
# project may use them, and disabling an API can delete its data.
resource "google_project_service" "enabled" {
  for_each = toset(concat([
    "artifactregistry.googleapis.com",     # function images and the connector image
    "cloudbuild.googleapis.com",           # builds the function source
    "cloudfunctions.googleapis.com",       # Cloud Functions (gen2)
    "cloudresourcemanager.googleapis.com", # project lookups (data.google_project)
    "firestore.googleapis.com",            # state, idempotency ledger, outcomes, tokens
    "iam.googleapis.com",                  # service accounts
    "iamcredentials.googleapis.com",       # OIDC tokens of Pub/Sub push subscriptions
    "logging.googleapis.com",              # function and connector logs
    "pubsub.googleapis.com",               # the bus
    "run.googleapis.com",                  # the connector, and the functions' services
    "secretmanager.googleapis.com",        # the Twitch client secret
    "storage.googleapis.com",              # the function source bucket
    ], local.serverless ? [
    "cloudscheduler.googleapis.com", # EventSubReconcile's ticks (serverless mode)
  ] : []))

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
