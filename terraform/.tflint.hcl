# tflint with its built-in (bundled) Terraform rules only: no plugin is downloaded, so
# `tflint --init` is never needed and it runs offline.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
