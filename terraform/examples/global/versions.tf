terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      # 6.0: a `region` argument on every regional resource, so one provider serves all regions.
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
