# EventSubWebhook is the one public function (terraform/webhook.tf): checked on the
# plan, offline (terraform/test.sh, mock providers).

mock_provider "google" {
  mock_data "google_project" {
    defaults = { number = "123456789" }
  }
}
mock_provider "archive" {}

variables {
  project_id       = "proj"
  twitch_client_id = "client"
  connector_image  = "img"
  twitch_channels  = ["bitbrat_demo"]
}

run "only_the_webhook_is_public" {
  command = apply

  assert {
    condition     = google_cloudfunctions2_function.webhook.service_config[0].ingress_settings == "ALLOW_ALL" && google_cloud_run_service_iam_member.webhook_public.member == "allUsers"
    error_message = "EventSubWebhook must be reachable by Twitch: public ingress, allUsers invoker"
  }
  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.function : f.service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"])
    error_message = "every other function keeps internal ingress"
  }
  assert {
    condition     = alltrue([for m in google_cloud_run_service_iam_member.push_invokes_function : m.member != "allUsers"])
    error_message = "no other function is invocable by allUsers"
  }
  assert {
    condition     = google_cloudfunctions2_function.webhook.service_config[0].max_instance_count == 5
    error_message = "the public function's instances are bounded"
  }
  assert {
    condition     = google_project_iam_member.webhook_datastore_user.condition[0].expression == "resource.name == \"projects/proj/databases/(default)\""
    error_message = "the webhook reaches only the shared database"
  }
  assert {
    condition     = google_cloudfunctions2_function.webhook.service_config[0].secret_environment_variables[0].key == "TWITCH_EVENTSUB_WEBHOOK_SECRET"
    error_message = "the webhook secret comes from Secret Manager"
  }
}
