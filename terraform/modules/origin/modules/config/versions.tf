terraform {
  # The same floor as every Arbor module (1.9, for cross-variable validation elsewhere).
  required_version = ">= 1.9.0"
}
