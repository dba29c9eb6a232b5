# Least privilege, checked on the plan (terraform/test.sh; mock providers, offline):
# the bus-facing functions (Normalize, Finalize) have no access to the database that
# holds the bot's token and the connector's state, and only the named upstream
# services may publish to the egress topics.

mock_provider "google" {
  mock_data "google_project" {
    defaults = { number = "123456789" }
  }
}
mock_provider "archive" {}

variables {
  project_id        = "proj"
  twitch_client_id  = "client"
  connector_image   = "img"
  twitch_channels   = ["bitbrat_demo"]
  egress_publishers = ["serviceAccount:llm-bot@proj.iam.gserviceaccount.com"]
}

run "token_store_is_apart" {
  command = apply

  assert {
    condition     = alltrue([for k, m in google_project_iam_member.datastore_user : startswith(k, "normalize/") ? m.condition[0].expression == "resource.name == \"projects/proj/databases/(default)\"" : true])
    error_message = "Normalize may use only the shared database"
  }
  assert {
    condition     = alltrue([for k, m in google_project_iam_member.datastore_user : startswith(k, "finalize/") ? m.condition[0].expression == "resource.name == \"projects/proj/databases/(default)\"" : true])
    error_message = "Finalize may use only the shared database"
  }
  assert {
    condition     = length([for k in keys(google_project_iam_member.datastore_user) : k if startswith(k, "normalize/") || startswith(k, "finalize/")]) == 2
    error_message = "Normalize and Finalize have exactly one Firestore grant each"
  }
  assert {
    condition = alltrue([for k in ["egress_chat/twitch-edge-private", "egress_whisper/twitch-edge-private", "connector/twitch-edge-private"] :
    google_project_iam_member.datastore_user[k].condition[0].expression == "resource.name == \"projects/proj/databases/twitch-edge-private\""])
    error_message = "the egress functions and the connector reach the private database"
  }
  assert {
    condition     = !contains(keys(google_project_iam_member.datastore_user), "connector/(default)")
    error_message = "the connector keeps its state in the private database only"
  }
  assert {
    condition     = alltrue([for m in google_project_iam_member.datastore_user : m.role == "roles/datastore.user" && length(m.condition) == 1])
    error_message = "every Firestore grant is conditioned on one database"
  }
  assert {
    condition     = google_cloudfunctions2_function.function["egress_chat"].service_config[0].environment_variables["TWITCH_TOKEN_DATABASE"] == "twitch-edge-private"
    error_message = "EgressChat reads the token from the private database"
  }
  assert {
    condition     = contains([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e.value if e.name == "FIRESTORE_DATABASE"], "twitch-edge-private")
    error_message = "the connector's database is the private one"
  }
  assert {
    condition     = google_cloudfunctions2_function.function["egress_chat"].service_config[0].environment_variables["EGRESS_CHANNELS"] == "bitbrat_demo"
    error_message = "the egress allowlist defaults to the connector's channels"
  }
}

run "only_named_services_make_the_bot_speak" {
  command = apply

  assert {
    condition     = toset([for k, p in google_pubsub_topic_iam_member.publisher : p.member if p.topic == google_pubsub_topic.topic["egress"].id]) == toset(["serviceAccount:llm-bot@proj.iam.gserviceaccount.com"])
    error_message = "only egress_publishers publish to internal.egress.v1"
  }
  assert {
    condition     = length([for m in concat(values(google_project_iam_member.datastore_user), values(google_project_iam_member.build)) : m if m.role == "roles/pubsub.publisher"]) == 0
    error_message = "no project-wide publisher (every project-level grant of the configuration is checked)"
  }
}

run "upstream_location" {
  command = apply
  variables {
    private_database = ""
  }

  assert {
    condition     = length(google_firestore_database.private) == 0 && !contains(keys(google_cloudfunctions2_function.function["egress_chat"].service_config[0].environment_variables), "TWITCH_TOKEN_DATABASE")
    error_message = "with private_database = \"\" the token stays in the shared database (upstream's location)"
  }
}
