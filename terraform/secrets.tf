# The Twitch application's client secret. Terraform creates only the secret (the
# container); its value is added out of band so that it never lands in a variable, a
# plan or the state:
#
#   printf %s "$TWITCH_CLIENT_SECRET" | gcloud secrets versions add \
#     twitch-edge-twitch-client-secret --data-file=- --project=PROJECT
#
# EgressChat, EgressWhisper and the connector read the latest version as the
# TWITCH_CLIENT_SECRET environment variable, resolved when an instance starts. Their
# service accounts (and no one else here) may access it: iam.tf.
resource "google_secret_manager_secret" "twitch_client_secret" {
  secret_id = "${var.name_prefix}-twitch-client-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
