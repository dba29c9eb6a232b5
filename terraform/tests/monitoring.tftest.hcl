# Observability, checked on the plan (terraform/test.sh; mock providers, offline): the
# processes get the OTLP endpoint, the service accounts only the two writer roles, and
# every alert policy notifies the given channels.

mock_provider "google" {
  mock_data "google_project" {
    defaults = { number = "123456789" }
  }
}
mock_provider "archive" {}

variables {
  project_id            = "proj"
  twitch_client_id      = "client"
  connector_image       = "img"
  twitch_channels       = ["bitbrat_demo"]
  notification_channels = ["projects/proj/notificationChannels/42"]
}

run "telemetry_reaches_google" {
  command = apply

  assert {
    condition     = contains([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e.value if e.name == "OTEL_EXPORTER_OTLP_ENDPOINT"], "https://telemetry.googleapis.com")
    error_message = "the connector exports to the Telemetry API"
  }
  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.function : f.service_config[0].environment_variables["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://telemetry.googleapis.com"])
    error_message = "every function exports to the Telemetry API"
  }
  assert {
    condition     = alltrue([for m in google_project_iam_member.telemetry_writer : contains(["roles/monitoring.metricWriter", "roles/cloudtrace.agent"], m.role)])
    error_message = "the telemetry grants are the metric and trace writer roles only"
  }
  assert {
    condition     = length(google_project_iam_member.telemetry_writer) == 2 * (1 + length(google_cloudfunctions2_function.function))
    error_message = "the connector and each function get both writer roles"
  }
  assert {
    condition     = length(google_monitoring_alert_policy.edge) == 8 && alltrue([for p in google_monitoring_alert_policy.edge : p.notification_channels == tolist(["projects/proj/notificationChannels/42"])])
    error_message = "the eight alert policies notify the given channel"
  }
}

run "telemetry_off" {
  command = apply
  variables {
    telemetry_enabled = false
  }

  assert {
    condition     = length(google_project_iam_member.telemetry_writer) == 0
    error_message = "no writer roles without telemetry"
  }
  assert {
    condition     = length([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e if e.name == "OTEL_EXPORTER_OTLP_ENDPOINT"]) == 0
    error_message = "no OTLP endpoint without telemetry"
  }
}
