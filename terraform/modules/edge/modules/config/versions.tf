terraform {
  # 1.9: validation rules that refer to other variables (workers).
  required_version = ">= 1.9.0"
}
