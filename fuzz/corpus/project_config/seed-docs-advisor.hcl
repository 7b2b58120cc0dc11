project {
  name = "docs"
}

stage "dev" {}

advisor {
  history = "180d"                                 # default window for --since
  teams   = { "alice@example.com" = "platform" }   # author email -> team

  team_share               = 0.2   # a team counts with >= 20% of a stack's commits ...
  team_min_commits         = 3     # ... and at least 3 of them
  hot_per_month            = 2     # a file is hot at >= 2 commits/month ...
  hot_ratio                = 4     # ... when another file with resources changes <= 1/4 as often
  privileged_domains       = ["identity", "encryption"]
  capability_min_resources = 3     # a capability counts with >= 3 resources
  coupling                 = 0.8   # share of commits touching either stack that touch both ...
  coupling_min_commits     = 5     # ... with at least 5 such commits
  coupling_max_stacks      = 20    # commits touching more stacks (bulk edits) are ignored
  max_resources            = 50    # blast radius: resources declared or deployed
  max_dependents           = 10    # blast radius: dependents, direct and transitive

  permission_domains = { "aws_iam_role" = "workload-identity" }  # overrides, see below
  capabilities       = { "aws_lambda_" = "serverless" }
}
