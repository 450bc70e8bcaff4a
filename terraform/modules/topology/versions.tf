terraform {
  # 1.9: validation rules that refer to other variables (default_region); terraform test
  # (1.6) runs this module's tests offline.
  required_version = ">= 1.9.0"
}
