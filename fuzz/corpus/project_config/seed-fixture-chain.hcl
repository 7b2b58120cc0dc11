# Four provider-free stacks: base <- broken <- downstream, base <- sibling.
project {
  name = "chain"
}

stage "dev" {
  variables = { env = instance.name }
}
