# Firestore in native mode. It holds the connector's state (connector/), the bot's
# tokens (oauth/twitch/bot/token, written by upstream's OAuth flow), the idempotency
# ledger (idempotency/), delivery claims (deliveries/) and outcomes (events/).
# ABANDON: terraform destroy leaves the database and its data in place.
resource "google_firestore_database" "this" {
  count = var.create_firestore_database ? 1 : 0

  name                    = var.firestore_database
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# TTL policies: Firestore deletes a document some time (usually within a day) after its
# expireAt. The field is exempt from indexing (empty index_config): a timestamp that
# only grows would otherwise make an index hotspot.
resource "google_firestore_field" "expire_at" {
  # Without a private database the connector's collections live here too.
  for_each = toset(concat(var.ttl_collections, local.private_database == "" ? var.private_ttl_collections : []))

  database   = var.firestore_database
  collection = each.value
  field      = "expireAt"

  ttl_config {}
  index_config {}

  depends_on = [google_firestore_database.this, google_project_service.enabled]
}

# The private database: the bot's token and the connector's state, apart from what the
# bus-facing functions may read (iam.tf). Upstream's OAuth flow writes the token here
# when pointed at it (README, Security model).
resource "google_firestore_database" "private" {
  count = local.private_database != "" && var.create_firestore_database ? 1 : 0

  name                    = local.private_database
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.enabled]
}

resource "google_firestore_field" "private_expire_at" {
  for_each = local.private_database == "" ? toset([]) : toset(var.private_ttl_collections)

  database   = local.private_database
  collection = each.value
  field      = "expireAt"

  ttl_config {}
  index_config {}

  depends_on = [google_firestore_database.private, google_project_service.enabled]
}
